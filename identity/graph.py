"""The OneID identity graph in Redis: one atomic Lua run per batch of events.

Python does what needs no shared state (blocked values, priority order, hashing); the script
(graph_lib.lua + graph.lua) does everything that reads or writes the graph, so workers on
different partitions resolve concurrently without locks: Redis runs one script at a time.

How an event resolves (identifiers in priority order):
- it joins the profile of its highest-priority identifier that is already linked; new
  identifiers are linked to it (edge: this event, anchored on that identifier), or create a
  profile whose OneID is a hash of the creating identifier's keyed pseudonym ("o_" + 16 hex of
  sha1(pseudonym), touchstream/pseudonyms.py: nothing of the identifier can be recovered from a
  OneID without the secret), probed past ids already used;
- another profile reached by one of its identifiers is merged, the older one (creation event
  time, then id) surviving and the other becoming its alias, unless the merge would break a
  limit of the rules (two user_ids: never merge two people), an operator split the two, or
  the value was seen with too many people (frequency guard): then that lower-priority
  identifier is not linked and a rejection is recorded - except for ``repoint`` types (shared
  devices and browsers), which move to the person of this event if it is newer than the last
  evidence tying them to the other person;
- events carrying an identifier of an erased profile (suppressed, by pseudonym) resolve to nothing when
  they were received before the suppression entry ends (erasure + the suppression window): judged
  by receipt, our clock, never by the time a client wrote; a OneID once erased (tombstoned) is
  never issued again, so a person re-created after the window gets a new, different OneID.

Trust (``trusted`` False: an event of a browser key, which anyone can copy out of a page):
- its identifiers link into profiles marked untrusted (:attr:`Edge.trusted`); it never merges
  two profiles that both hold a trusted identifier of a non-anonymous type (rejection
  ``untrusted_merge``), never re-points a shared identifier and never feeds the frequency guard;
- a trusted event *disagrees* with an untrusted identifier when it cannot join that
  identifier's profile (the merge would break a limit, e.g. two user_ids, or an operator split
  them): the trusted event wins and takes the identifier over (a move), whatever the times;
- a trusted event re-asserting an untrusted identifier of its own profile makes it trusted, and
  an identifier once trusted stays so when untrusted events assert it again.

What one event and one person can hold is bounded: an event brings at most
``max_identifiers_per_event`` identifiers (more: ``too_many_identifiers`` rejections), a profile
holds at most the rules' ``max_members`` (past it: ``profile_full``). A profile holding only the
rules' ``anonymous_types`` is kept in a sorted set by last-seen (receipt) time, and
:meth:`IdentityGraph.collect_idle_anonymous` removes it from the graph once idle.

All keys live under ``<prefix>{oneid}:`` (layout: identity/layout.py). The shared hash tag puts
the whole graph in one Redis Cluster slot, so the scripts stay legal on a cluster (KEYS[1]
routes them); a graph too big for one node would be split by tenant, never by key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
import redis

from identity import layout
from identity.exceptions import (
    GraphStateError,
    IdentityError,
    NotLinkedError,
    ProfileNotFoundError,
    UnmergeError,
)
from identity.rules import IdentityRules, TypeRule
from touchstream import tombstones
from touchstream.errors import ConfigError
from touchstream.pseudonyms import Pseudonyms

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
HASH_TAG = layout.HASH_TAG
HOT = layout.GUARDED

# Stable rejection reasons (the IdentityRejection.reason field).
BLOCKED = "blocked"  # a placeholder value from the rules' blocked lists
UNKNOWN_TYPE = "unknown_type"  # a type the rules do not use for identity
SUPPRESSED = layout.WHY_SUPPRESSED  # the event carries an identifier of a deleted profile
FREQUENCY_GUARD = layout.WHY_FREQUENCY_GUARD  # the value was seen with too many people; it links no one
NEWER_LINK = layout.WHY_NEWER_LINK  # a shared device/browser was re-pointed by a newer login already
UNMERGED = layout.WHY_UNMERGED  # an operator split these two profiles; they are not merged again
LIMIT_PREFIX = layout.WHY_LIMIT  # "limit:<type>": linking would exceed that type's limit
UNTRUSTED_MERGE = layout.WHY_UNTRUSTED_MERGE  # an untrusted event met two profiles holding trusted ids
PROFILE_FULL = layout.WHY_PROFILE_FULL  # linking would put more than the rules' max_members into one profile
TOO_MANY_IDENTIFIERS = "too_many_identifiers"  # past max_identifiers_per_event in one event
INVALID_VALUE = "invalid_value"  # not a string, not UTF-8 or longer than MAX_GRAPH_VALUE_CHARS

#: Longest identifier value the graph stores: twice what identity/identifiers.py lets through,
#: so only input that skipped the normaliser is refused.
MAX_GRAPH_VALUE_CHARS = 512
#: Idle profiles removed per script run by collect_idle_anonymous: keeps each run short.
COLLECT_RUN = 100


@dataclass(frozen=True, slots=True)
class BatchResolution:
    """What one batch did. ``oneids`` follows the events' order (None: no usable identifier
    or suppressed); merges/rejections have the shapes of io.touchstream.IdentityMerge and
    IdentityRejection; moves are shared devices/browsers re-pointed to a newer login."""

    oneids: list[str | None]
    merges: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    moves: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EventRef:
    """An event that created a link, with where to re-read it when known."""

    message_id: str
    timestamp: int
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """Why an identifier is in its profile: the event that linked it and the identifier of
    that event it was linked through (None for a root: the identifier that created the profile,
    or one whose anchor left it)."""

    type: str
    value: str
    event: EventRef
    anchor: tuple[str, str] | None
    since: int  # when it joined its person: a later login by someone else may take it over
    trusted: bool = True  # False: only untrusted events (browser keys) asserted it so far


@dataclass(frozen=True, slots=True)
class PendingMerge:
    """A merge (or an operator's unmerge) the graph recorded and Kafka has not acknowledged yet.

    For an unmerge, ``merged`` is the new OneID the ``identifiers`` (``type:value``) moved to
    from ``survivor``: the lake needs them to move those identifiers' history too.
    """

    merged: str
    survivor: str
    kind: str = "merge"
    identifiers: tuple[str, ...] = ()

    def record(self, now_ms: int, reason: str) -> dict[str, Any]:
        """The merges-topic record (schemas/identity_merge.avsc) this entry stands for."""
        moved = [dict(zip(("type", "value"), _split(m), strict=True)) for m in self.identifiers]
        return {"survivor": self.survivor, "merged": self.merged, "message_id": "", "timestamp": now_ms,
                "identifiers": moved, "reason": reason, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class GraphErasure:
    """What the graph half of an erasure removed: the survivor, every OneID merged into it (all
    tombstoned now), how many identifiers left the index (suppressed by hash until
    ``suppressed_until``), their ``type:pseudonym`` hashes (under the current and, while a secret
    is rotated, the previous secret) and the merge-outbox entries dropped."""

    oneid: str
    aliases: list[str]
    identifiers: int
    hashes: list[str]
    merge_outbox: int
    erased_at: int
    suppressed_until: int


@dataclass(frozen=True, slots=True)
class UnmergeResult:
    """A split: ``identifiers`` left ``oneid`` and now form ``new_oneid``; the events that
    linked them (``message_ids``) are the ones to re-attribute to ``new_oneid``."""

    oneid: str
    new_oneid: str
    identifiers: list[dict[str, str]]
    message_ids: list[str]
    events: list[EventRef]
    at_ms: int = 0

    @property
    def pending(self) -> PendingMerge:
        """The unmerge as the merges topic carries it (and the graph's outbox holds it until then)."""
        return PendingMerge(self.new_oneid, self.oneid, "unmerge",
                            tuple(f"{i['type']}:{i['value']}" for i in self.identifiers))


@cache
def _script_source(name: str) -> str:
    """The script as Redis runs it: the layout's constants, the shared helpers, then the script."""
    lib = (_HERE / "graph_lib.lua").read_text(encoding="utf-8")
    return layout.lua_prelude() + lib + "\n" + (_HERE / name).read_text(encoding="utf-8")


def _usable_text(value: str) -> bool:
    """A string the graph can store and Avro can carry: bounded and valid UTF-8."""
    if len(value) > MAX_GRAPH_VALUE_CHARS:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _as_list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}.
    return value if isinstance(value, list) else []


def _split(member: str) -> tuple[str, str]:
    type_, _, value = member.partition(":")
    return type_, value


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _clean_type(type_: object) -> str:
    """A type for a rejection record (Avro: valid UTF-8) when it may not be a type name at all."""
    if not isinstance(type_, str):
        return "unknown"
    text = type_[:40]
    return text if _usable_text(text) else text.encode("utf-8", "replace").decode("utf-8")


def _type_value(ident: Any) -> tuple[str, Any]:
    """(type, value) of an identifier beyond the cap, however malformed: it is only recorded."""
    if isinstance(ident, Mapping):
        return _clean_type(ident.get("type")), ident.get("value")
    return "unknown", ident


#: Rejections of values that may be junk: hashed without the cache, so they cannot evict hot values.
_UNCACHED_HASH = frozenset({TOO_MANY_IDENTIFIERS, INVALID_VALUE})


def _ref(message_id: str, ts: int, partition: int, offset: int) -> EventRef:
    if partition is None or partition < 0:
        return EventRef(message_id, int(ts))
    return EventRef(message_id, int(ts), int(partition), int(offset))


class IdentityGraph:
    """Resolve events to OneIDs and administer the graph kept in Redis under ``prefix``.

    ``redis_client`` is a synchronous redis-py client (bytes or decoded responses both work).
    ``max_identifiers_per_event`` caps what one event may bring (the collector already refuses
    more; this protects importers and replays): the rest become ``too_many_identifiers`` rejections.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str,
        rules: IdentityRules,
        *,
        pseudonyms: Pseudonyms,
        max_identifiers_per_event: int = 20,
    ) -> None:
        """``rules`` always explicit: a graph built with other index buckets or types than the
        ones that wrote it answers "unknown" for identifiers that exist. ``pseudonyms`` (the
        deployment's secret) name new OneIDs, suppression entries and every hash the graph hands
        out: another secret would issue other OneIDs and miss every suppression."""
        if "{" in prefix or "}" in prefix:
            raise ConfigError(f"redis prefix {prefix!r} must not contain braces: the graph adds its hash tag")
        cap = max_identifiers_per_event
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(f"max_identifiers_per_event must be a whole number >= 1, got {cap!r}")
        self.max_identifiers_per_event = max_identifiers_per_event
        self.redis = redis_client
        self.rules = rules
        self.pseudonyms = pseudonyms
        self.base = layout.base(prefix)
        self.meta_key = self.base + layout.K_META
        self._buckets = self.rules.index_buckets
        self._resolve_script = redis_client.register_script(_script_source("graph.lua"))
        self._admin_script = redis_client.register_script(_script_source("graph_admin.lua"))
        self._rule_cache: dict[str, TypeRule | None] = {}
        self._screen = lru_cache(maxsize=1 << 16)(self._screen_uncached)

    # ---- keys (identity/layout.py) ----

    def index_key(self, type_: str, value: str) -> str:
        return layout.index_key(self.base, type_, value, self._buckets)

    def profile_key(self, oneid: str) -> str:
        return layout.profile_key(self.base, oneid)

    def alias_key(self, oneid: str) -> str:
        return layout.alias_key(self.base, oneid, self._buckets)

    def guard_key(self, type_: str, value: str) -> str:
        """The set of people a contested value was seen with."""
        return layout.guard_key(self.base, type_, self.pseudonyms.of(type_, value))

    @property
    def suppression_key(self) -> str:
        return self.base + layout.K_SUPPRESSION

    @property
    def audit_key(self) -> str:
        return self.base + layout.K_AUDIT

    @property
    def anonymous_key(self) -> str:
        """Sorted set: OneID of each anonymous-only profile -> its last-seen event time (ms)."""
        return self.base + layout.K_ANONYMOUS

    # ---- resolution ----

    def _rule(self, type_: str) -> TypeRule | None:
        try:
            return self._rule_cache[type_]
        except KeyError:
            rule = self._rule_cache[type_] = self.rules.rule(type_)
            return rule

    def _screen_uncached(self, type_: str, value: str) -> int | str:
        """The rank of a usable identifier, or why it is not used (cached: values repeat a lot)."""
        if not _usable_text(value):
            return INVALID_VALUE
        rule = self._rule(type_)
        if rule is None:
            return UNKNOWN_TYPE
        if rule.is_blocked(value):
            return BLOCKED
        return rule.rank

    def _prepare(
        self, events: Sequence[Mapping[str, Any]], seen_ms: int
    ) -> tuple[list[list[Any]], list[tuple[int, str, str, str]]]:
        payload: list[list[Any]] = []
        pseudonym, previous = self.pseudonyms.of, self.pseudonyms.previous_of
        rotating = self.pseudonyms.rotating
        early: list[tuple[int, str, str, str]] = []
        screen = self._screen
        cap = self.max_identifiers_per_event
        for i, event in enumerate(events):
            kept: list[tuple[int, str, str]] = []
            idents = event.get("identifiers") or ()
            if len(idents) > cap:
                # the first `cap` in the event's order are used; every other one is a rejection
                early += [(i, *_type_value(ident), TOO_MANY_IDENTIFIERS) for ident in idents[cap:]]
                idents = idents[:cap]
            for ident in idents:
                type_, value = ident["type"], ident["value"]
                if type(type_) is not str or type(value) is not str:  # the cached screen needs strings
                    early.append((i, _clean_type(type_), value, INVALID_VALUE))
                    continue
                rank = screen(type_, value)
                if isinstance(rank, int):
                    kept.append((rank, type_, value))
                else:
                    early.append((i, type_ if rank == BLOCKED else _clean_type(type_), value, rank))
            if len(kept) > 1:
                kept = sorted(set(kept))
            flat: list[str] = []
            for _, type_, value in kept:
                flat.append(type_)
                flat.append(value)
            partition, offset = event.get("partition"), event.get("offset")
            row: list[Any] = [
                event["message_id"],
                int(event["timestamp"]),
                -1 if partition is None else int(partition),
                -1 if offset is None else int(offset),
                0 if event.get("trusted") is False else 1,
                flat,
            ]
            row.append([pseudonym(type_, value) for _, type_, value in kept])
            received = event.get("received_at")
            row.append(seen_ms if received is None else int(received))
            if rotating:
                row.append([previous(type_, value) for _, type_, value in kept])
            payload.append(row)
        return payload, early

    def resolve_batch(
        self, events: Sequence[Mapping[str, Any]], now_ms: int | None = None
    ) -> BatchResolution:
        """Resolve ``events`` (each ``{message_id, timestamp, identifiers[, partition, offset,
        trusted, received_at]}``, identifiers normalised; ``trusted`` False for an event of an
        untrusted write key) in order, in one atomic script run (see the module docstring).
        ``now_ms`` (default: the wall clock) is when they arrived: an anonymous-only profile's
        last-seen time, from which it is judged idle, and the receipt time suppression judges an
        event by when it carries no ``received_at``."""
        if not events:
            return BatchResolution([], [], [], [])
        seen_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        payload, early = self._prepare(events, seen_ms)
        return self._result(events, self._call_resolve(payload, seen_ms), early)

    def _call_resolve(self, payload: list[list[Any]], seen_ms: int) -> dict[str, Any]:
        args: list[str | int | bytes] = [
            self.base,
            self._buckets,
            self.rules.script_config,
            "1" if self.pseudonyms.rotating else "0",
            orjson.dumps(payload),  # 3-5x cheaper than json.dumps on the hot path (measured)
            seen_ms,
        ]
        try:
            raw = self._resolve_script(keys=[self.meta_key], args=args)
        except redis.ResponseError as exc:
            raise self._error(exc) from None
        return orjson.loads(raw)

    def _result(
        self,
        events: Sequence[Mapping[str, Any]],
        out: dict[str, Any],
        early: list[tuple[int, str, str, str]],
    ) -> BatchResolution:
        oneids: list[str | None] = [o or None for o in _as_list(out.get(layout.R_ONEIDS))]
        if len(oneids) != len(events):
            raise IdentityError(f"resolve script answered {len(oneids)} OneIDs for {len(events)} events")
        found = [(r[0] - 1, r[1], r[2], r[3]) for r in _as_list(out.get(layout.R_REJECTIONS))]
        rows = sorted(early + found, key=lambda r: r[0]) if early else found
        pseudonym = self.pseudonyms.of
        rejections = [
            {
                "oneid": oneids[i],
                "type": type_,
                "value_hash": pseudonym(type_, value) if reason not in _UNCACHED_HASH
                else self.pseudonyms.of_any(type_, value),
                "reason": reason,
                "message_id": events[i]["message_id"],
                "timestamp": int(events[i]["timestamp"]),
            }
            for i, type_, value, reason in rows
        ]
        merges = []
        for ei, survivor, merged, reason, brought in _as_list(out.get(layout.R_MERGES)):
            event = events[ei - 1]
            merges.append(
                {
                    "survivor": survivor,
                    "merged": merged,
                    "message_id": event["message_id"],
                    "timestamp": int(event["timestamp"]),
                    "identifiers": [
                        {"type": t, "value": v} for t, v in (_split(m) for m in _as_list(brought))
                    ],
                    "reason": reason,
                }
            )
        moves = []
        for ei, type_, value, source, target in _as_list(out.get(layout.R_MOVES)):
            event = events[ei - 1]
            moves.append(
                {
                    "type": type_,
                    "value_hash": pseudonym(type_, value),
                    "from_oneid": source,
                    "to_oneid": target,
                    "message_id": event["message_id"],
                    "timestamp": int(event["timestamp"]),
                }
            )
        return BatchResolution(oneids, merges, rejections, moves)

    def _error(self, exc: redis.ResponseError) -> IdentityError:
        text = str(exc)
        code, _, detail = text.partition(" ")
        if code == layout.E_GRAPH_STATE:
            return GraphStateError(detail)
        if code == layout.E_NOT_FOUND:
            return ProfileNotFoundError(detail)
        if code == layout.E_NOT_LINKED:
            return NotLinkedError(detail)
        if code == layout.E_UNMERGE_ALL:
            return UnmergeError(detail)
        return IdentityError(f"identity script failed: {text}")

    # ---- merge outbox (see graph.lua: a merge is recorded there in the same atomic run) ----

    def merges_acknowledged(self, merged: Iterable[str]) -> None:
        """The merge records of these merged OneIDs are on Kafka: forget them."""
        merged = list(merged)
        if merged:
            self.redis.hdel(self.base + layout.K_MERGE_OUTBOX, *merged)

    def unacknowledged_merges(self, older_than_s: float, now_s: float) -> list[PendingMerge]:
        """Merges and unmerges recorded more than ``older_than_s`` ago and never acknowledged:
        what a crash left between the script and Kafka. An entry is ``survivor|seconds`` for a
        merge, ``survivor|seconds|unmerge|<JSON list of type:value>`` for an unmerge."""
        stale = []
        for merged, value in self.redis.hgetall(self.base + layout.K_MERGE_OUTBOX).items():
            survivor, _, rest = _text(value).partition("|")
            at, _, rest = rest.partition("|")
            kind, _, moved = rest.partition("|")
            if float(at or 0) < now_s - older_than_s:
                stale.append(PendingMerge(_text(merged), survivor, kind or "merge",
                                          tuple(json.loads(moved)) if moved else ()))
        return stale

    # ---- lookups ----

    def lookup(self, type_: str, value: str) -> str | None:
        """The OneID a (normalised) identifier belongs to, or None (unknown, guarded or deleted)."""
        found = self.redis.hget(self.index_key(type_, value), value)
        if found is None:
            return None
        oneid = _text(found)
        return None if oneid == HOT else oneid

    def resolve_alias(self, oneid: str) -> str:
        """The surviving OneID of ``oneid`` (itself when it was never merged away)."""
        for _ in range(16):
            survivor = self.redis.hget(self.alias_key(oneid), oneid)
            if survivor is None:
                return oneid
            oneid = _text(survivor)
        return oneid

    def resolve_aliases(self, oneids: Iterable[str]) -> dict[str, str]:
        """``{oneid: survivor}`` for many OneIDs, one pipelined round trip per alias hop."""
        result = {oneid: oneid for oneid in oneids}
        pending = list(result)
        for _ in range(16):
            if not pending:
                break
            pipe = self.redis.pipeline(transaction=False)
            for oneid in pending:
                current = result[oneid]
                pipe.hget(self.alias_key(current), current)
            answers = pipe.execute()
            nxt = []
            for oneid, survivor in zip(pending, answers, strict=True):
                if survivor is not None:
                    result[oneid] = _text(survivor)
                    nxt.append(oneid)
            pending = nxt
        return result

    def profile_identifiers(self, oneid: str) -> dict[str, list[str]]:
        """``{type: [values]}`` of the live profile behind ``oneid`` ({} when there is none)."""
        fields = self.redis.hkeys(self.profile_key(self.resolve_alias(oneid)))
        out: dict[str, list[str]] = {}
        for field in sorted(_text(f) for f in fields):
            if field.startswith(layout.F_MARK):
                continue
            type_, value = _split(field)
            out.setdefault(type_, []).append(value)
        return out

    def edges(self, oneid: str) -> list[Edge]:
        """Every identifier of the profile with the event that linked it and its anchor."""
        out = self._admin(layout.OP_EDGES, oneid)
        edges = []
        for row in _as_list(out.get(layout.R_EDGES)):
            member, ts, message_id, parent, partition, offset, since, trusted = row
            type_, value = _split(member)
            anchor = _split(parent) if parent else None
            edges.append(Edge(type_, value, _ref(message_id, ts, partition, offset), anchor, int(since),
                              bool(trusted)))
        return edges

    # ---- operator actions ----

    def unmerge(
        self, oneid: str, identifier_type: str, value: str, *, actor: str = "system"
    ) -> UnmergeResult:
        """Split a wrong link: the identifier leaves the profile and forms a new one with the
        identifiers linked only through it; audited; the two are never merged again."""
        out = self._admin(
            layout.OP_UNMERGE, oneid, identifier_type, value, actor,
            self.pseudonyms.of(identifier_type, value), self.rules.person_key,
            self._anonymous_json,
        )
        refs = [_ref(*row) for row in _as_list(out.get(layout.R_EVENTS))]
        ids = _as_list(out.get(layout.R_IDS))
        log.info("unmerge by %s: %s split into %s (%d identifiers)", actor, out[layout.R_ONEID],
                 out[layout.R_NEW], len(ids))
        return UnmergeResult(
            oneid=out[layout.R_ONEID],
            new_oneid=out[layout.R_NEW],
            identifiers=[{"type": t, "value": v} for t, v in (_split(m) for m in ids)],
            message_ids=[ref.message_id for ref in refs],
            events=refs,
            at_ms=int(out.get(layout.R_TIME) or 0),
        )

    def delete_profile(self, oneid: str, actor: str, *, suppress_ms: int = 0) -> list[dict[str, str]]:
        """Erase the profile's identity (:meth:`erase`); the identifiers it held."""
        return self._erase(oneid, actor, suppress_ms)[1]

    def erase(self, oneid: str, actor: str, *, suppress_ms: int = 0) -> GraphErasure:
        """The graph half of an erasure, atomic: the profile behind ``oneid`` with its links,
        edges and aliases goes; the survivor and every alias are tombstoned (never issued again);
        its identifiers are suppressed (by hash) for events received until ``suppress_ms`` after
        now; merge-outbox entries naming it are dropped; an erasure record keeps the aliases and
        hashes for the other stores (:meth:`erasure_record`). Audited.
        :class:`ProfileNotFoundError` when no live profile has ``oneid``."""
        return self._erase(oneid, actor, suppress_ms)[0]

    def _erase(self, oneid: str, actor: str, suppress_ms: int) -> tuple[GraphErasure, list[dict[str, str]]]:
        if suppress_ms < 0:
            raise ValueError("suppress_ms must be >= 0")
        target = self.resolve_alias(oneid)
        members = [_text(f) for f in self.redis.hkeys(self.profile_key(target))]
        every = self.pseudonyms.every
        for _ in range(5):
            hashes = {m: every(*_split(m)) for m in members if not m.startswith(layout.F_MARK)}
            out = self._admin(layout.OP_DELETE, oneid, actor, json.dumps(hashes, ensure_ascii=False),
                              int(suppress_ms))
            if layout.R_RETRY not in out:
                ids = _as_list(out.get(layout.R_IDS))
                survivor, at = out[layout.R_ONEID], int(out[layout.R_TIME])
                log.info("profile %s deleted by %s (%d identifiers)", survivor, actor, len(ids))
                erased = GraphErasure(
                    oneid=survivor, aliases=_as_list(out.get(layout.R_ALIASES)), identifiers=len(ids),
                    hashes=sorted({f"{t}:{h}" for t, v in map(_split, ids) for h in every(t, v)}),
                    merge_outbox=int(out.get(layout.R_OUTBOX, 0)), erased_at=at,
                    suppressed_until=at + int(suppress_ms))
                return erased, [{"type": t, "value": v} for t, v in (_split(m) for m in ids)]
            members = _as_list(out[layout.R_RETRY])
        raise IdentityError(f"profile {oneid} kept changing while being deleted")

    # ---- tombstones and erasure records (touchstream/tombstones.py) ----

    @property
    def tombstone_key(self) -> str:
        return self.base + layout.K_ERASED

    def erasure_key(self, survivor: str) -> str:
        return self.base + layout.K_ERASURE + survivor

    def tombstone(self, oneids: Iterable[str], survivor: str) -> int:
        """Tombstone OneIDs the graph does not hold (state without identity; aliases only the
        profile store knew) as erased with ``survivor``; an existing tombstone is kept. The time."""
        out = self._admin(layout.OP_TOMBSTONE, survivor, json.dumps(sorted(set(oneids))))
        return int(out[layout.R_TIME])

    def tombstoned(self, oneid: str) -> tuple[int, str] | None:
        """(erased at ms, survivor) when ``oneid`` was erased, else None."""
        found = self.redis.hget(self.tombstone_key, oneid)
        return None if found is None else tombstones.parse(found)

    def erased_oneids(self) -> set[str]:
        """Every tombstoned OneID (readers that must leave erased people out: the lake sink,
        dead-letter replay). O(erasures)."""
        return {_text(oneid) for oneid in self.redis.hkeys(self.tombstone_key)}

    def suppressed_hashes(self) -> set[str]:
        """Every ``type:pseudonym`` hash still suppressed (erased people's identifiers)."""
        return {_text(field_) for field_ in self.redis.hkeys(self.suppression_key)}

    def erasure_record(self, survivor: str) -> dict[str, Any]:
        """The erasure record of ``survivor``: ``aliases``, ``hashes`` (until finished) and
        ``steps`` (name -> what the step removed); empty when there is none."""
        raw = {_text(k): _text(v) for k, v in (self.redis.hgetall(self.erasure_key(survivor)) or {}).items()}
        record: dict[str, Any] = {"steps": {}}
        for name, value in raw.items():
            if name.startswith(layout.X_STEP):
                record["steps"][name[len(layout.X_STEP):]] = json.loads(value)
            elif name in (layout.X_ALIASES, layout.X_HASHES):
                record[name] = _as_list(json.loads(value))
            else:
                record[name] = value
        return record if raw else {}

    def record_erasure(self, survivor: str, **fields: Any) -> None:
        """Write fields of the erasure record: ``step_<name>=`` a step's counts (JSON), or plain
        text fields (``requested``, ``actor``, ``started``, ``finished``)."""
        mapping: dict[Any, Any] = {}  # redis-py's Mapping type is invariant in its keys
        for name, value in fields.items():
            if name.startswith("step_"):
                mapping[layout.X_STEP + name[5:]] = json.dumps(value, sort_keys=True)
            elif name in (layout.X_ALIASES, layout.X_HASHES):
                mapping[name] = json.dumps(sorted(value))
            else:
                mapping[name] = str(value)
        if mapping:
            self.redis.hset(self.erasure_key(survivor), mapping=mapping)

    def forget_erasure_hashes(self, survivor: str) -> None:
        """The erasure finished: its record keeps no identifier hashes (suppression keeps them
        for the window)."""
        self.redis.hdel(self.erasure_key(survivor), layout.X_HASHES)

    def audit(self, action: str, actor: str, **fields: str | int) -> None:
        """An audit entry (no identifier values: counts, OneIDs, hashes at most)."""
        entry = {"action": action, "actor": actor, "time": int(time.time() * 1000), **fields}
        self.redis.xadd(self.audit_key, {k: str(v) for k, v in entry.items()})

    def purge_suppressions(self, batch: int = 1000) -> int:
        """Remove suppression entries whose end has passed (Redis's clock); how many. O(entries),
        in script runs of ``batch`` fields, so Redis is never blocked for long."""
        purged, fields = 0, []
        for field_, _ in self.redis.hscan_iter(self.suppression_key, count=batch):
            fields.append(_text(field_))
            if len(fields) >= batch:
                purged += int(self._admin(layout.OP_PURGE, json.dumps(fields)).get(layout.R_COUNT, 0))
                fields = []
        if fields:
            purged += int(self._admin(layout.OP_PURGE, json.dumps(fields)).get(layout.R_COUNT, 0))
        if purged:
            log.info("purged %d expired suppression entr(ies)", purged)
        return purged

    # ---- idle anonymous profiles ----

    @property
    def _anonymous_json(self) -> str:
        return json.dumps(sorted(self.rules.anonymous_types))

    def collect_idle_anonymous(self, now_ms: int, idle_ms: int, limit: int = 500) -> list[str]:
        """Remove up to ``limit`` profiles holding only anonymous identifiers whose last event is
        more than ``idle_ms`` before ``now_ms``; return their OneIDs, whose profile state the caller
        deletes. Not an erasure: nothing is suppressed or audited (a later event of the same
        anonymous id starts a new profile, with the same deterministic OneID); each profile goes
        atomically, at most COLLECT_RUN per script run so Redis is never blocked for long."""
        if limit < 0 or idle_ms < 0:
            raise ValueError("limit and idle_ms must be >= 0")
        cutoff = int(now_ms) - int(idle_ms)
        collected: list[str] = []
        while len(collected) < limit:
            run = min(COLLECT_RUN, limit - len(collected))
            out = self._admin(layout.OP_COLLECT, cutoff, run, self._anonymous_json)
            collected += _as_list(out.get(layout.R_COLLECTED))
            if int(out.get(layout.R_COUNT, 0)) < run:
                break
        if collected:
            log.info("collected %d idle anonymous profile(s)", len(collected))
        return collected

    def backfill_anonymous(self, now_ms: int) -> int:
        """Put anonymous-only profiles written before the anonymous set existed into it, last seen
        ``now_ms`` (so they are collected one idle period from now); returns how many joined. A
        one-off after upgrading: O(graph), in runs of 500 profiles."""
        added, batch = 0, []
        pattern = _glob_escape(self.base) + layout.K_PROFILE + "*"
        start = len(self.base) + len(layout.K_PROFILE)
        for key in self.redis.scan_iter(match=pattern, count=1000):
            batch.append(_text(key)[start:])
            if len(batch) == 500:
                added += self._backfill(batch, now_ms)
                batch = []
        if batch:
            added += self._backfill(batch, now_ms)
        return added

    def _backfill(self, oneids: list[str], now_ms: int) -> int:
        out = self._admin(layout.OP_BACKFILL, json.dumps(oneids), int(now_ms), self._anonymous_json)
        return int(out.get(layout.R_COUNT, 0))

    def collected_total(self) -> int:
        """Idle anonymous profiles collected from this graph so far (kept in its meta hash)."""
        return int(self.redis.hget(self.meta_key, layout.M_COLLECTED) or 0)

    def audit_log(self, count: int = 100) -> list[dict[str, str]]:
        """The newest audit entries (unmerge, delete), newest first."""
        entries = self.redis.xrevrange(self.audit_key, count=count) or []
        return [
            {"id": _text(entry_id), **{_text(k): _text(v) for k, v in (fields or {}).items()}}
            for entry_id, fields in entries
        ]

    def _admin(self, op: str, *args: Any) -> dict[str, Any]:
        try:
            raw = self._admin_script(keys=[self.meta_key], args=[self.base, self._buckets, op, *args])
        except redis.ResponseError as exc:
            raise self._error(exc) from None
        return json.loads(raw)

    # ---- verification ----

    def check_consistency(self) -> list[str]:
        """Problems found by scanning the whole graph (empty when consistent): every indexed
        identifier in exactly one live profile that lists it, counts right, limits kept, aliases
        pointing at live profiles that list them, the anonymous set naming live profiles holding
        only anonymous types. For tests and operators: O(graph), pipelined, no PII in the messages."""
        start = len(self.base)
        kinds = (layout.K_PROFILE, layout.K_INDEX, layout.K_ALIAS)
        groups: dict[str, list[Any]] = {kind: [] for kind in kinds}
        for key in self.redis.scan_iter(match=_glob_escape(self.base) + "*", count=1000):
            rest = _text(key)[start:]
            kind = next((k for k in kinds if rest.startswith(k)), None)
            if kind is not None:
                groups[kind].append(key)
        index: dict[tuple[str, str], str] = {}
        skip = start + len(layout.K_INDEX)
        found = groups[layout.K_INDEX]
        for key, entries in zip(found, self._hgetall_many(found), strict=True):
            type_ = _text(key)[skip:].rpartition(":")[0]
            for value, owner in entries.items():
                index[(type_, _text(value))] = _text(owner)
        profiles: dict[str, dict[str, str]] = {}
        skip = start + len(layout.K_PROFILE)
        found = groups[layout.K_PROFILE]
        for key, fields in zip(found, self._hgetall_many(found), strict=True):
            profiles[_text(key)[skip:]] = {
                name: (_text(v) if name.startswith(layout.F_MARK) else "")
                for name, v in ((_text(k), v) for k, v in fields.items())
            }
        problems: list[str] = []
        members = 0
        for oneid, fields in profiles.items():
            members += self._check_profile(oneid, fields, index, problems)
        for (type_, value), owner in index.items():
            if owner != HOT and owner not in profiles:
                problems.append(f"{type_} {self._short(type_, value)} points at missing profile {owner}")
        linked = sum(1 for owner in index.values() if owner != HOT)
        if members != linked:
            problems.append(f"{members} profile members but {linked} linked index entries")
        for entries in self._hgetall_many(groups[layout.K_ALIAS]):
            for merged, survivor in entries.items():
                merged, survivor = _text(merged), _text(survivor)
                if merged in profiles:
                    problems.append(f"alias {merged} is also a live profile")
                if survivor not in profiles:
                    problems.append(f"alias {merged} points at missing profile {survivor}")
                elif layout.F_ALIAS + merged not in profiles[survivor]:
                    problems.append(f"alias {merged} is not listed by its survivor {survivor}")
        self._check_anonymous(profiles, problems)
        return problems

    def _check_anonymous(self, profiles: dict[str, dict[str, str]], problems: list[str]) -> None:
        anonymous = self.rules.anonymous_types
        for member, _ in self.redis.zscan_iter(self.anonymous_key, count=1000):
            oneid = _text(member)
            fields = profiles.get(oneid)
            if fields is None:
                problems.append(f"anonymous set lists missing profile {oneid}")
            elif any(not f.startswith(layout.F_MARK) and _split(f)[0] not in anonymous for f in fields):
                problems.append(f"anonymous set lists {oneid}, which holds a non-anonymous identifier")

    def _short(self, type_: str, value: str) -> str:
        """How a problem names an identifier: 12 hex of its pseudonym, never the value."""
        return self.pseudonyms.of_any(type_, value)[:12]

    def _hgetall_many(self, keys: list[Any]) -> list[dict[Any, Any]]:
        out: list[dict[Any, Any]] = []
        for i in range(0, len(keys), 500):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys[i : i + 500]:
                pipe.hgetall(key)
            out += pipe.execute()
        return out

    def _check_profile(
        self, oneid: str, fields: dict[str, str], index: dict[tuple[str, str], str], problems: list[str]
    ) -> int:
        members = [f for f in fields if not f.startswith(layout.F_MARK)]
        if not members:
            problems.append(f"profile {oneid} has no identifiers")
        counts: dict[str, int] = {}
        for member in members:
            type_, value = _split(member)
            counts[type_] = counts.get(type_, 0) + 1
            owner = index.get((type_, value))
            if owner != oneid:
                problems.append(f"{type_} {self._short(type_, value)} is in {oneid} but indexed to {owner}")
        for type_, n in counts.items():
            recorded = fields.get(layout.F_COUNT + type_)
            if recorded != str(n):
                problems.append(f"profile {oneid} counts {recorded} {type_}, holds {n}")
        person = self.rules.person_key
        limit = self.rules.rule(person)
        if limit is not None and limit.max_links is not None and counts.get(person, 0) > limit.max_links:
            problems.append(f"profile {oneid} holds {counts[person]} {person} values")
        if counts.get(person) and layout.F_PERSON not in fields:
            problems.append(f"profile {oneid} holds a {person} but records no person")
        if len(members) > self.rules.max_members:
            problems.append(f"profile {oneid} holds {len(members)} identifiers, more than max_members")
        return len(members)
