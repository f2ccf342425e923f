"""A pure-Python reference of the OneID resolver: graph.lua + graph_lib.lua, driven like
:meth:`identity.graph.IdentityGraph.resolve_batch`, without Redis.

The Lua scripts are the behaviour; this module is an executable specification of them, written
to be read and to make rule changes testable with a dict: fast unit tests pin merge, limit and
guard semantics through it, and tests/integration/test_identity_reference.py checks it against
the real scripts on random event sequences. It is not a production path (no concurrency, no
durability, no metrics).

It models the whole graph state the scripts read: the index (value -> OneID, GUARDED once the
frequency guard stopped it), profiles (edges with anchor and "since", creation time, person,
per-type counts, aliases, never-merge lists), the alias map, the frequency-guard sets, the
suppression hash and the anonymous set; and the operator actions that change it (unmerge,
delete_profile, collect_idle_anonymous). It leaves out partition/offset provenance, message-id
compaction, the merge outbox, the audit stream and the guard sets' expiry (Redis expires them
frequency_guard.window_days after the last write, by wall clock). Where a script reads Redis's
clock (a profile left holding only anonymous identifiers, a split), the reference reads ``clock``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from identity import layout
from identity.exceptions import NotLinkedError, ProfileNotFoundError, UnmergeError
from identity.graph import (
    BLOCKED,
    FREQUENCY_GUARD,
    HOT,
    INVALID_VALUE,
    LIMIT_PREFIX,
    NEWER_LINK,
    PROFILE_FULL,
    TOO_MANY_IDENTIFIERS,
    UNKNOWN_TYPE,
    UNMERGED,
    BatchResolution,
    Edge,
    EventRef,
    UnmergeResult,
    value_hash,
)
from identity.graph import (
    COLLECT_RUN as _COLLECT_RUN,
)
from identity.graph import (
    SUPPRESSED as WHY_SUPPRESSED,
)
from identity.rules import IdentityRules, TypeRule

#: A logged-in event moves a shared identifier's "since" up at most this often (graph.lua).
REFRESH_MS = 300_000
#: Longest identifier value the graph stores (graph.py MAX_GRAPH_VALUE_CHARS).
_MAX_VALUE_CHARS = 512


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324 - ids, not security


def parent_hash(tv: str) -> str:
    """How an edge names its anchor: the first 8 hex of sha1("type:value")."""
    return _sha1(tv)[:8]


def _split(tv: str) -> tuple[str, str]:
    type_, _, value = tv.partition(":")
    return type_, value


@dataclass
class _Rec:
    """One edge: the linking event, its anchor's short hash ("" for a root), and when the
    identifier joined its person (0: ``ts``)."""

    ts: int
    msg: str
    parent: str
    since: int = 0

    def since_of(self) -> int:
        return self.since if self.since else self.ts

    def set_since(self, ts: int) -> None:
        self.since = ts if self.ts != ts else 0


@dataclass
class _Profile:
    created: int
    members: dict[str, _Rec] = field(default_factory=dict)
    person: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)
    never: list[str] = field(default_factory=list)


@dataclass
class _Limit:
    max: int
    win: int
    rep: bool
    mp: int


@dataclass
class _Event:
    index: int
    msg: str
    ts: int


@dataclass
class _State:
    """What graph.lua keeps in locals while it resolves one event."""

    T: str | None = None
    anchor: str | None = None
    pend: list[tuple[str, str, str]] = field(default_factory=list)
    pcount: dict[str, int] = field(default_factory=dict)
    pperson: str | None = None
    pk: bool = False
    fill: list[int] = field(default_factory=list)


class ReferenceGraph:
    """One identity graph in memory; :meth:`resolve_batch` answers what IdentityGraph's would
    for the same rules, cap and history of batches."""

    def __init__(
        self,
        rules: IdentityRules,
        *,
        max_identifiers_per_event: int = 20,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.rules = rules
        self.clock = clock  # Redis's TIME where the scripts read it (a profile left anonymous, a split)
        self.cap = max_identifiers_per_event
        self.pk = rules.person_key
        # the script only knows the listed types (rules.script_config)
        self.limits = {
            r.name: _Limit(
                -1 if r.max_links is None else r.max_links,
                -1 if r.window_ms is None else r.window_ms,
                r.repoint,
                r.max_persons,
            )
            for r in rules.types
        }
        self.limited = [r.name for r in rules.types if r.max_links is not None and r.max_links > 0]
        self.index: dict[str, str] = {}  # "type:value" -> OneID or HOT
        self.profiles: dict[str, _Profile] = {}
        self.alias: dict[str, str] = {}  # merged OneID -> survivor
        self.guard: dict[str, set[str]] = {}  # "type:value" -> short hashes of people
        self.suppressed: dict[str, int] = {}  # "type:" + sha256(value) -> deletion time (ms)
        self.anonymous: dict[str, int] = {}  # OneID of an anonymous-only profile -> last seen (ms)
        self.collected = 0
        self._created_now: str | None = None
        self._reset_run()

    def _reset_run(self) -> None:
        self.merges: list[list[Any]] = []
        self.rejections: list[tuple[int, str, str, str]] = []
        self.moves: list[list[Any]] = []
        self.aliased: dict[str, str] = {}

    # ---- what IdentityGraph offers for reading ----

    def lookup(self, type_: str, value: str) -> str | None:
        """The OneID of an identifier, or None (unknown or guarded)."""
        found = self.index.get(f"{type_}:{value}")
        return None if found is None or found == HOT else found

    def resolve_alias(self, oneid: str) -> str:
        for _ in range(16):
            survivor = self.alias.get(oneid)
            if survivor is None:
                return oneid
            oneid = survivor
        return oneid

    def profile_identifiers(self, oneid: str) -> dict[str, list[str]]:
        profile = self.profiles.get(self.resolve_alias(oneid))
        out: dict[str, list[str]] = {}
        for tv in sorted(profile.members if profile else ()):
            type_, value = _split(tv)
            out.setdefault(type_, []).append(value)
        return out

    def edges(self, oneid: str) -> list[Edge]:
        """Like IdentityGraph.edges (without partition/offset, which the reference does not keep)."""
        profile = self.profiles[self.resolve_alias(oneid)]
        byh = {parent_hash(m): m for m in profile.members}
        out = []
        for tv in sorted(profile.members):
            rec = profile.members[tv]
            type_, value = _split(tv)
            parent = byh.get(rec.parent)
            anchor = _split(parent) if parent else None
            out.append(Edge(type_, value, EventRef(rec.msg, rec.ts), anchor, rec.since_of()))
        return out

    # ---- operator actions (graph_admin.lua) ----

    def _live(self, oneid: str) -> str:
        o = self.resolve_alias(oneid)
        if o not in self.profiles:
            raise ProfileNotFoundError(f"no live profile {oneid}")
        return o

    def delete_profile(self, oneid: str, now_ms: int) -> list[dict[str, str]]:
        """Erase the profile; its identifiers are suppressed from ``now_ms`` on (Redis: its clock)."""
        o = self._live(oneid)
        names = sorted(self.profiles[o].members)
        for tv in names:
            if self.index.get(tv) == o:
                del self.index[tv]
            self.guard.pop(tv, None)
            type_, value = _split(tv)
            self.suppressed[f"{type_}:{value_hash(value)}"] = now_ms
        self._drop(o)
        return [{"type": t, "value": v} for t, v in map(_split, names)]

    def unmerge(self, oneid: str, type_: str, value: str) -> UnmergeResult:
        """Split the identifier and everything linked through it into a new profile; the two are
        never merged again."""
        o = self._live(oneid)
        xtv = f"{type_}:{value}"
        if self.index.get(xtv) != o:
            raise NotLinkedError(f"identifier not in {o}")
        old = self.profiles[o]
        byh = {parent_hash(m): m for m in old.members}
        children: dict[str, list[str]] = {}
        for m in sorted(old.members):
            p = byh.get(old.members[m].parent)
            if p and p != m:
                children.setdefault(p, []).append(m)
        moved, inside, k = [xtv], {xtv}, 0
        while k < len(moved):
            for c in children.get(moved[k], ()):
                if c not in inside:
                    inside.add(c)
                    moved.append(c)
            k += 1
        if len(moved) >= len(old.members):
            raise UnmergeError(f"every identifier of {o} came through this one")
        moved.sort()
        new = self._new_id(xtv)
        split = _Profile(created=min(old.members[m].ts for m in moved), never=[o])
        refs: list[EventRef] = []
        for m in moved:
            rec = old.members.pop(m)
            if m == xtv:
                rec = _Rec(rec.ts, rec.msg, "", rec.since)
            split.members[m] = rec
            if rec.msg not in {r.message_id for r in refs}:
                refs.append(EventRef(rec.msg, rec.ts))
            self.index[m] = new
        self.profiles[new] = split
        self._recount(old)
        self._recount(split)
        old.never = [*old.never, new]
        # part of an anonymous profile is anonymous (same last seen); a side of a stronger one
        # that kept only anonymous identifiers becomes collectable (last seen: now)
        if o in self.anonymous:
            self.anonymous[new] = self.anonymous[o]
        else:
            now = self.clock()
            if self._only_anonymous(old.members):
                self.anonymous[o] = now
            if self._only_anonymous(split.members):
                self.anonymous[new] = now
        return UnmergeResult(
            oneid=o,
            new_oneid=new,
            identifiers=[{"type": t, "value": v} for t, v in map(_split, moved)],
            message_ids=[r.message_id for r in refs],
            events=refs,
        )

    def collect_idle_anonymous(self, now_ms: int, idle_ms: int, limit: int = 500) -> list[str]:
        """Remove anonymous-only profiles last seen before ``now_ms - idle_ms`` (oldest first)."""
        cutoff = int(now_ms) - int(idle_ms)
        collected: list[str] = []
        while len(collected) < limit:
            run = min(_COLLECT_RUN, limit - len(collected))
            idle = sorted((seen, o) for o, seen in self.anonymous.items() if seen < cutoff)[:run]
            for _, o in idle:
                del self.anonymous[o]
                profile = self.profiles.get(o)
                if profile and profile.members and profile.person is None and self._collectable(profile):
                    for m in profile.members:
                        if self.index.get(m) == o:
                            del self.index[m]
                    self._drop(o)
                    collected.append(o)
            if len(idle) < run:
                break
        self.collected += len(collected)
        return collected

    def _recount(self, profile: _Profile) -> None:
        counts: dict[str, int] = {}
        people = []
        for m in profile.members:
            type_, value = _split(m)
            counts[type_] = counts.get(type_, 0) + 1
            if type_ == self.pk:
                people.append(value)
        profile.counts = counts
        profile.person = min(people) if people else None

    # ---- resolution ----

    def resolve_batch(
        self, events: Sequence[Mapping[str, Any]], now_ms: int | None = None
    ) -> BatchResolution:
        """What IdentityGraph.resolve_batch answers for ``events`` (one script run) received at
        ``now_ms`` (default: the clock)."""
        if not events:
            return BatchResolution([], [], [], [])
        self._reset_run()
        self._seen_ms = self.clock() if now_ms is None else int(now_ms)
        early: list[tuple[int, str, Any, str]] = []
        oneids: list[str] = []
        for i, event in enumerate(events):
            ids = self._screen(i, event, early)
            ev = _Event(i, event["message_id"], int(event["timestamp"]))
            self._created_now = None
            if self._suppressed(ids, ev.ts):
                for j in range(0, len(ids), 2):
                    self._reject(ev, ids[j], ids[j + 1], WHY_SUPPRESSED)
                oneids.append("")
            else:
                oneids.append(self._resolve_event(ev, ids) or "")
        final: list[str | None] = []
        for o in oneids:
            for _ in range(64):
                if o not in self.aliased:
                    break
                o = self.aliased[o]
            final.append(o or None)
        return self._result(events, final, early)

    def _suppressed(self, ids: list[str], ts: int) -> bool:
        """An identifier of a deleted profile, deleted at or after the event's time."""
        return any(
            self.suppressed.get(f"{ids[j]}:{value_hash(ids[j + 1])}", -1) >= ts for j in range(0, len(ids), 2)
        )

    def _screen(self, i: int, event: Mapping[str, Any], early: list[tuple[int, str, Any, str]]) -> list[str]:
        """graph.py's _prepare: what never reaches the script, and the rest in priority order."""
        idents = list(event.get("identifiers") or ())
        if len(idents) > self.cap:
            for ident in idents[self.cap :]:
                type_, value = (
                    (_clean_type(ident.get("type")), ident.get("value"))
                    if isinstance(ident, Mapping)
                    else ("unknown", ident)
                )
                early.append((i, type_, value, TOO_MANY_IDENTIFIERS))
            idents = idents[: self.cap]
        kept: set[tuple[int, str, str]] = set()
        for ident in idents:
            type_, value = ident["type"], ident["value"]
            if type(type_) is not str or type(value) is not str:
                early.append((i, _clean_type(type_), value, INVALID_VALUE))
                continue
            rule: TypeRule | None = None
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
        self,
        events: Sequence[Mapping[str, Any]],
        oneids: list[str | None],
        early: list[tuple[int, str, Any, str]],
    ) -> BatchResolution:
        rows = sorted(early + self.rejections, key=lambda r: r[0])
        rejections = [
            {
                "oneid": oneids[i],
                "type": type_,
                "value_hash": value_hash(value) if isinstance(value, str) else _any_hash(value),
                "reason": reason,
                "message_id": events[i]["message_id"],
                "timestamp": int(events[i]["timestamp"]),
            }
            for i, type_, value, reason in rows
        ]
        merges = [
            {
                "survivor": survivor,
                "merged": merged,
                "message_id": events[ei]["message_id"],
                "timestamp": int(events[ei]["timestamp"]),
                "identifiers": [{"type": t, "value": v} for t, v in (_split(m) for m in brought)],
                "reason": reason,
            }
            for ei, survivor, merged, reason, brought in self.merges
        ]
        moves = [
            {
                "type": type_,
                "value_hash": value_hash(value),
                "from_oneid": source,
                "to_oneid": target,
                "message_id": events[ei]["message_id"],
                "timestamp": int(events[ei]["timestamp"]),
            }
            for ei, type_, value, source, target in self.moves
        ]
        return BatchResolution(oneids, merges, rejections, moves)

    def _reject(self, ev: _Event, t: str, v: str, why: str) -> None:
        self.rejections.append((ev.index, t, v, why))

    # ---- limits ----

    def _member_count(self, o: str | None) -> int:
        return len(self.profiles[o].members) if o else 0

    def _over_full(self, a: str | None, b: str | None, extra: int) -> bool:
        return self._member_count(a) + self._member_count(b) + extra > self.rules.max_members

    def _window_count(self, o: str, t: str, ts: int, window: int) -> int:
        lo = ts - window
        return sum(
            1 for tv, rec in self.profiles[o].members.items() if _split(tv)[0] == t and rec.since_of() > lo
        )

    def _count(self, o: str | None, t: str) -> int:
        return self.profiles[o].counts.get(t, 0) if o else 0

    def _violation(
        self, a: str | None, b: str | None, pend: dict[str, int], npend: int, ts: int
    ) -> str | None:
        """Would profiles a and b plus the pending identifiers break a limit?"""
        for t in self.limited:
            rule = self.limits[t]
            base = pend.get(t, 0)
            na, nb = self._count(a, t), self._count(b, t)
            if base + na + nb > rule.max and rule.win > 0:
                if na > 0 and a:
                    na = self._window_count(a, t, ts, rule.win)
                if nb > 0 and b:
                    nb = self._window_count(b, t, ts, rule.win)
            if base + na + nb > rule.max:
                return LIMIT_PREFIX + t
        if self._over_full(a, b, npend):
            return PROFILE_FULL
        return None

    def _add_violation(self, o: str | None, pend: dict[str, int], npend: int, t: str, ts: int) -> str | None:
        """Would one more identifier of type t fit into profile o plus the pending ones?"""
        rule = self.limits.get(t)
        if rule and rule.max > 0:
            base = pend.get(t, 0) + 1
            n = self._count(o, t)
            if base + n > rule.max and rule.win > 0 and n > 0 and o:
                n = self._window_count(o, t, ts, rule.win)
            if base + n > rule.max:
                return LIMIT_PREFIX + t
        if self._over_full(o, None, npend + 1):
            return PROFILE_FULL
        return None

    def _never_merge(self, a: str, b: str) -> bool:
        return any(self.resolve_alias(x) == b for x in self.profiles[a].never) or any(
            self.resolve_alias(x) == a for x in self.profiles[b].never
        )

    # ---- writes ----

    def _new_id(self, tv: str) -> str:
        for n in range(65):
            cand = layout.ONEID_PREFIX + _sha1(tv if n == 0 else f"{tv}#{n}")[:16]
            if cand not in self.profiles and cand not in self.alias:
                return cand
        raise RuntimeError("no free OneID for an identifier after 64 probes")

    @staticmethod
    def _join_now(members: dict[str, _Rec], ts: int) -> None:
        """A profile without a person joins one: its identifiers' "since" becomes now."""
        for rec in members.values():
            if rec.since_of() != ts:
                rec.set_since(ts)

    def _attach(self, o: str, tv: str, anchor: str | None, ev: _Event, fresh: bool = False) -> None:
        profile = self.profiles[o]
        t, v = _split(tv)
        profile.members[tv] = _Rec(ev.ts, ev.msg, parent_hash(anchor) if anchor else "")
        profile.counts[t] = profile.counts.get(t, 0) + 1
        # a stronger identifier: the profile is no longer anonymous (never collected from now on)
        if t not in self.rules.anonymous_types and o != self._created_now:
            self.anonymous.pop(o, None)
        if t == self.pk and profile.person is None:
            profile.person = v
            if not fresh:
                self._join_now(profile.members, ev.ts)
        self.index[tv] = o

    def _create(self, tv: str, ev: _Event) -> str:
        o = self._new_id(tv)
        self._created_now = o
        self.profiles[o] = _Profile(created=ev.ts)
        self._attach(o, tv, None, ev, fresh=True)
        return o

    @staticmethod
    def _reroot(members: dict[str, _Rec], xtv: str, anchor: str, ev: _Event) -> None:
        """Re-root the tree at xtv (each edge keeps its event, each identifier its since) and
        hang xtv under the anchor with this event."""
        byh = {parent_hash(m): m for m in members}
        path, seen, cur = [xtv], {xtv}, xtv
        while True:
            rec = members.get(cur)
            parent = byh.get(rec.parent) if rec else None
            if parent is None or parent in seen:
                break
            path.append(parent)
            seen.add(parent)
            cur = parent
        for i in range(len(path) - 1, 0, -1):
            child = members[path[i - 1]]
            since = members[path[i]].since_of()
            rec = _Rec(child.ts, child.msg, parent_hash(path[i - 1]))
            rec.set_since(since)
            members[path[i]] = rec
        members[xtv] = _Rec(ev.ts, ev.msg, parent_hash(anchor))

    def _merge(self, T: str, o: str, xtv: str, anchor: str, ev: _Event, t: str) -> str:
        """Fold profiles T and o into the older one (creation time, then id)."""
        pt, po = self.profiles[T], self.profiles[o]
        if pt.created < po.created or (pt.created == po.created and o > T):
            surv, lose = T, o
        else:
            surv, lose = o, T
        # the loser leaves the anonymous set; the survivor stays in it only if both were anonymous
        lost = self.anonymous.pop(lose, None)
        if lost is None:
            self.anonymous.pop(surv, None)
        elif surv in self.anonymous and lost > self.anonymous[surv]:
            self.anonymous[surv] = lost
        self._reroot(po.members, xtv, anchor, ev)
        if pt.person and not po.person:
            self._join_now(po.members, ev.ts)
        elif po.person and not pt.person:
            self._join_now(pt.members, ev.ts)
        ps, pl = self.profiles[surv], self.profiles[lose]
        brought = sorted(pl.members)
        for m in brought:
            ps.members[m] = pl.members[m]
            self.index[m] = surv
        for type_, k in pl.counts.items():
            if k:
                ps.counts[type_] = ps.counts.get(type_, 0) + k
        for a in [lose, *pl.aliases]:
            ps.aliases.add(a)
            self.alias[a] = surv
        if ps.person is None and pl.person is not None:
            ps.person = pl.person
        if pl.never:
            ps.never = ps.never + pl.never
        del self.profiles[lose]
        self.merges.append([ev.index, surv, lose, layout.WHY_SHARED + t, brought])
        self.aliased[lose] = surv
        return surv

    def _drop(self, o: str) -> None:
        for a in self.profiles[o].aliases:
            self.alias.pop(a, None)
        del self.profiles[o]
        self.anonymous.pop(o, None)

    def _splice_out(self, o: str, tv: str) -> None:
        """Remove tv from o; its children hang on its parent so the profile stays one tree."""
        profile = self.profiles[o]
        xr = profile.members.get(tv)
        if xr is None:
            return
        mine = parent_hash(tv)
        for m, rec in profile.members.items():
            if m != tv and rec.parent == mine:
                rec.parent = xr.parent
        if len(profile.members) <= 1:
            self._drop(o)
            return
        del profile.members[tv]
        t, v = _split(tv)
        profile.counts[t] = profile.counts.get(t, 0) - 1
        # losing its last non-anonymous identifier makes the profile collectable (last seen: now)
        anonymous = self.rules.anonymous_types
        if t not in anonymous and o not in self.anonymous and self._only_anonymous(profile.members):
            self.anonymous[o] = self.clock()
        if t == self.pk and profile.person == v:
            others = [_split(m)[1] for m in profile.members if _split(m)[0] == self.pk]
            profile.person = min(others) if others else None

    # ---- one event ----

    def _conflict(self, st: _State, ev: _Event, tv: str, o: str, why: str) -> None:
        """tv (in profile o) cannot join st.T: count its people, then re-point or reject it."""
        t, v = _split(tv)
        rule = self.limits.get(t)
        if t != self.pk:
            po = self.profiles[o].person
            pt = st.pperson
            if st.T:
                pt = self.profiles[st.T].person or pt
            if po and pt and po != pt:
                people = self.guard.setdefault(tv, set())
                people.update({_sha1(po)[:12], _sha1(pt)[:12]})
                if len(people) > (rule.mp if rule else self.rules.default_max_persons):
                    self._splice_out(o, tv)
                    self.index[tv] = HOT
                    del self.guard[tv]
                    self._reject(ev, t, v, FREQUENCY_GUARD)
                    return
        # only a login (the event carries its person) re-points; anonymous traffic never does
        if rule and rule.rep and why != UNMERGED and st.pk:
            rec = self.profiles[o].members.get(tv) if o in self.profiles else None
            if rec and ev.ts <= rec.since_of():
                self._reject(ev, t, v, NEWER_LINK)
                return
            why2 = self._add_violation(st.T, st.pcount, len(st.pend), t, ev.ts)
            if why2:
                self._reject(ev, t, v, why2)
                return
            self._splice_out(o, tv)
            self.index.pop(tv, None)
            if st.T:
                self._attach(st.T, tv, st.anchor, ev)
                self.moves.append([ev.index, t, v, o, st.T])
            else:
                st.pend.append((t, v, tv))
                st.pcount[t] = st.pcount.get(t, 0) + 1
                self.moves.append([ev.index, t, v, o, ""])
                st.fill.append(len(self.moves) - 1)
            return
        self._reject(ev, t, v, why)

    def _refresh_since(self, T: str, ids: list[str], ts: int) -> None:
        """A login moves its shared identifiers' "since" up (at most every REFRESH_MS)."""
        pairs = list(zip(ids[::2], ids[1::2], strict=True))
        if not any(t == self.pk and self.index.get(f"{t}:{v}") == T for t, v in pairs):
            return
        members = self.profiles[T].members
        for t, v in pairs:
            rule = self.limits.get(t)
            tv = f"{t}:{v}"
            if rule and rule.rep and self.index.get(tv) == T and tv in members:
                rec = members[tv]
                if ts > rec.since_of() + REFRESH_MS:
                    rec.set_since(ts)

    def _resolve_event(self, ev: _Event, ids: list[str]) -> str | None:
        st = _State()
        for j in range(0, len(ids), 2):
            t, v = ids[j], ids[j + 1]
            tv = f"{t}:{v}"
            o = self.index.get(tv)
            if o == HOT:
                self._reject(ev, t, v, FREQUENCY_GUARD)
            elif not o:
                why = self._add_violation(st.T, st.pcount, len(st.pend), t, ev.ts)
                if why:
                    self._reject(ev, t, v, why)
                else:
                    st.pend.append((t, v, tv))
                    st.pcount[t] = st.pcount.get(t, 0) + 1
                    if t == self.pk:
                        st.pperson, st.pk = v, True
            elif o == st.T:
                if t == self.pk:
                    st.pk = True
            else:
                why = None
                if st.T is None:
                    if st.pend:
                        why = self._violation(None, o, st.pcount, len(st.pend), ev.ts)
                elif self._never_merge(st.T, o):
                    why = UNMERGED
                else:
                    why = self._violation(st.T, o, st.pcount, len(st.pend), ev.ts)
                if why:
                    self._conflict(st, ev, tv, o, why)
                elif st.T is None:
                    st.T, st.anchor = o, tv
                    if t == self.pk:
                        st.pk = True
                else:
                    assert st.anchor is not None
                    st.T = self._merge(st.T, o, tv, st.anchor, ev, t)
        first = 0
        if st.T is None and st.pend:
            st.T = self._create(st.pend[0][2], ev)
            st.anchor = st.pend[0][2]
            first = 1
        for _, _, tv in st.pend[first:]:
            assert st.T is not None
            self._attach(st.T, tv, st.anchor, ev)
        for k in st.fill:
            self.moves[k][4] = st.T
        if st.T:
            self._refresh_since(st.T, ids, ev.ts)
            self._seen_anonymous(st.T, ids)
        return st.T

    def _seen_anonymous(self, T: str, ids: list[str]) -> None:
        """An event whose identifiers in T are all anonymous moves T's last seen (receipt) time
        up when T is in the anonymous set; a profile it created from them joins the set."""
        for j in range(0, len(ids), 2):
            if ids[j] not in self.rules.anonymous_types and self.index.get(f"{ids[j]}:{ids[j + 1]}") == T:
                return
        if self._created_now == T or (T in self.anonymous and self._seen_ms > self.anonymous[T]):
            self.anonymous[T] = self._seen_ms

    def _collectable(self, profile: _Profile) -> bool:
        return self._only_anonymous(profile.members)

    def _only_anonymous(self, members: Iterable[str]) -> bool:
        return all(_split(m)[0] in self.rules.anonymous_types for m in members)


def _usable(value: str) -> bool:
    if len(value) > _MAX_VALUE_CHARS:
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


def _any_hash(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
