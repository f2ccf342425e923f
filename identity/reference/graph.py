"""ReferenceGraph: what IdentityGraph answers, computed in memory (graph.py's half: screening
identifiers before the script, shaping its answer after)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from identity.graph import (
    BLOCKED,
    INVALID_VALUE,
    MAX_GRAPH_VALUE_CHARS,
    TOO_MANY_IDENTIFIERS,
    UNKNOWN_TYPE,
    BatchResolution,
    Edge,
    UnmergeResult,
)
from identity.reference import admin
from identity.reference.resolve import BatchRun, Event
from identity.reference.state import GraphState, split_tv
from identity.rules import IdentityRules
from touchstream.pseudonyms import Pseudonyms

Early = tuple[int, str, Any, str]


def _wall_clock() -> int:
    return time.time_ns() // 1_000_000


class ReferenceGraph:
    """One identity graph in memory, answering like IdentityGraph for the same rules, cap and
    history of calls. ``clock`` stands for Redis's TIME (read by splits, erasures and a profile
    left with only anonymous identifiers); ``state`` is the whole graph, for tests to inspect."""

    def __init__(
        self,
        rules: IdentityRules,
        *,
        max_identifiers_per_event: int = 20,
        pseudonyms: Pseudonyms,
        clock: Callable[[], int] = _wall_clock,
    ) -> None:
        self.rules = rules
        self.cap = max_identifiers_per_event
        self.state = GraphState(rules, clock, pseudonyms)

    # ---- reads ----

    def lookup(self, type_: str, value: str) -> str | None:
        """The OneID of an identifier, or None (unknown, guarded or deleted)."""
        return self.state.lookup(type_, value)

    def resolve_alias(self, oneid: str) -> str:
        return self.state.resolve_alias(oneid)

    def profile_identifiers(self, oneid: str) -> dict[str, list[str]]:
        profile = self.state.profiles.get(self.resolve_alias(oneid))
        out: dict[str, list[str]] = {}
        for tv in sorted(profile.members if profile else ()):
            type_, value = split_tv(tv)
            out.setdefault(type_, []).append(value)
        return out

    def edges(self, oneid: str) -> list[Edge]:
        return self.state.edges(oneid)

    # ---- operator actions ----

    def unmerge(self, oneid: str, type_: str, value: str) -> UnmergeResult:
        return admin.unmerge(self.state, oneid, type_, value)

    def delete_profile(self, oneid: str, suppress_ms: int = 0) -> list[dict[str, str]]:
        return admin.delete_profile(self.state, oneid, suppress_ms)

    def collect_idle_anonymous(self, now_ms: int, idle_ms: int, limit: int = 500) -> list[str]:
        return admin.collect_idle_anonymous(self.state, now_ms, idle_ms, limit)

    # ---- resolution ----

    def resolve_batch(
        self, events: Sequence[Mapping[str, Any]], now_ms: int | None = None
    ) -> BatchResolution:
        """What IdentityGraph.resolve_batch answers for ``events`` received at ``now_ms``
        (default: the clock): one script run."""
        if not events:
            return BatchResolution([], [], [], [])
        seen = self.state.clock() if now_ms is None else int(now_ms)
        run = BatchRun(self.state, seen)
        early: list[Early] = []
        oneids = []
        for i, event in enumerate(events):
            ids = self._screen(i, event, early)
            received = event.get("received_at")
            ev = Event(i, event["message_id"], int(event["timestamp"]), event.get("trusted") is False,
                       seen if received is None else int(received))
            oneids.append(run.resolve(ev, ids))
        return _result(events, [o or None for o in run.final(oneids)], early, run, self.state.pseudonyms)

    def _screen(self, i: int, event: Mapping[str, Any], early: list[Early]) -> list[str]:
        """graph.py's _prepare: what never reaches the script, and the rest in priority order
        as [type, value, ...]."""
        idents = list(event.get("identifiers") or ())
        if len(idents) > self.cap:
            for ident in idents[self.cap :]:
                if isinstance(ident, Mapping):
                    type_, value = _clean_type(ident.get("type")), ident.get("value")
                else:
                    type_, value = "unknown", ident
                early.append((i, type_, value, TOO_MANY_IDENTIFIERS))
            idents = idents[: self.cap]
        kept: set[tuple[int, str, str]] = set()
        for ident in idents:
            type_, value = ident["type"], ident["value"]
            if type(type_) is not str or type(value) is not str:
                early.append((i, _clean_type(type_), value, INVALID_VALUE))
                continue
            if not _usable(value):
                reason = INVALID_VALUE
            elif (rule := self.rules.rule(type_)) is None:
                reason = UNKNOWN_TYPE
            elif rule.is_blocked(value):
                reason = BLOCKED
            else:
                kept.add((rule.rank, type_, value))
                continue
            early.append((i, type_ if reason == BLOCKED else _clean_type(type_), value, reason))
        flat: list[str] = []
        for _, type_, value in sorted(kept):
            flat += [type_, value]
        return flat


def _result(
    events: Sequence[Mapping[str, Any]], oneids: list[str | None], early: list[Early], run: BatchRun,
    pseudonyms: Pseudonyms,
) -> BatchResolution:
    """graph.py's _result: the script's answer in the shapes of the merge/rejection records."""

    def at(i: int) -> dict[str, Any]:
        return {"message_id": events[i]["message_id"], "timestamp": int(events[i]["timestamp"])}

    rejections = [
        {"oneid": oneids[i], "type": type_, "value_hash": pseudonyms.of_any(type_, value), "reason": reason,
         **at(i)}
        for i, type_, value, reason in sorted(early + run.rejections, key=lambda r: r[0])
    ]
    merges = [
        {
            "survivor": survivor,
            "merged": merged,
            **at(ei),
            "identifiers": [{"type": t, "value": v} for t, v in map(split_tv, brought)],
            "reason": reason,
        }
        for ei, survivor, merged, reason, brought in run.merges
    ]
    moves = [
        {"type": type_, "value_hash": pseudonyms.of_any(type_, value), "from_oneid": source,
         "to_oneid": target, **at(ei)}
        for ei, type_, value, source, target in run.moves
    ]
    return BatchResolution(oneids, merges, rejections, moves)


def _usable(value: str) -> bool:
    if len(value) > MAX_GRAPH_VALUE_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_type(type_: object) -> str:
    if not isinstance(type_, str):
        return "unknown"
    text = type_[:40]
    return text if _usable(text) else text.encode("utf-8", "replace").decode("utf-8")

