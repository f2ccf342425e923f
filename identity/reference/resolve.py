"""One run of graph.lua: a batch of screened events resolved against the graph state.

Names follow the script (T: the profile the event resolves to so far, o: the profile an
identifier already belongs to, tv: "type:value"), so the two read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from identity import layout
from identity.reference.state import GraphState, Profile, Rec, parent_hash, sha1_hex, split_tv

#: A logged-in event moves a shared identifier's "since" up at most this often (graph.lua REFRESH_MS).
REFRESH_MS = 300_000


@dataclass(frozen=True)
class Limit:
    """A listed type's rule as the script receives it (-1: none)."""

    max: int
    win: int
    rep: bool
    mp: int


@dataclass(frozen=True)
class Event:
    index: int
    msg: str
    ts: int
    #: an event of an untrusted (browser) write key
    untrusted: bool = False
    #: receipt time (ms): what suppression judges by
    received: int = 0


@dataclass
class _Pending:
    """What graph.lua keeps in locals while it resolves one event."""

    T: str | None = None
    anchor: str | None = None
    pend: list[str] = field(default_factory=list)
    pcount: dict[str, int] = field(default_factory=dict)
    pperson: str | None = None
    pk: bool = False
    fill: list[int] = field(default_factory=list)

    def add(self, t: str, tv: str) -> None:
        self.pend.append(tv)
        self.pcount[t] = self.pcount.get(t, 0) + 1


class BatchRun:
    """The merges, rejections and moves of one script run (0-based event indexes)."""

    def __init__(self, state: GraphState, seen_ms: int) -> None:
        self.g = state
        self.seen_ms = seen_ms
        rules = state.rules
        self.pk = rules.person_key
        self.anonymous_types = rules.anonymous_types
        self.default_mp = rules.default_max_persons
        self.max_members = rules.max_members
        # the script only knows the listed types (rules.script_config)
        self.limits = {
            r.name: Limit(
                -1 if r.max_links is None else r.max_links,
                -1 if r.window_ms is None else r.window_ms,
                r.repoint,
                r.max_persons,
            )
            for r in rules.types
        }
        self.limited = [name for name, rule in self.limits.items() if rule.max > 0]
        self.merges: list[list[Any]] = []
        self.rejections: list[tuple[int, str, str, str]] = []
        self.moves: list[list[Any]] = []
        self.aliased: dict[str, str] = {}
        self.created_now: str | None = None

    def resolve(self, ev: Event, ids: list[str]) -> str:
        """The event's OneID ("" for none): suppressed, or resolved."""
        self.created_now = None
        if self._suppressed(ids, ev.received):
            for j in range(0, len(ids), 2):
                self.reject(ev, ids[j], ids[j + 1], layout.WHY_SUPPRESSED)
            return ""
        return self._resolve_event(ev, ids) or ""

    def final(self, oneids: list[str]) -> list[str]:
        """An event that resolved to a profile merged later in the batch answers the survivor."""
        out = []
        for o in oneids:
            for _ in range(64):
                if o not in self.aliased:
                    break
                o = self.aliased[o]
            out.append(o)
        return out

    def reject(self, ev: Event, t: str, v: str, why: str) -> None:
        self.rejections.append((ev.index, t, v, why))

    def _suppressed(self, ids: list[str], received: int) -> bool:
        """An identifier of an erased profile whose suppression ends at or after the receipt."""
        sup, every = self.g.suppressed, self.g.pseudonyms.every
        return any(sup.get(f"{ids[j]}:{h}", -1) >= received
                   for j in range(0, len(ids), 2) for h in every(ids[j], ids[j + 1]))

    # ---- limits ----

    def _members(self, o: str | None) -> int:
        return len(self.g.profiles[o].members) if o else 0

    def _over_full(self, a: str | None, b: str | None, extra: int) -> bool:
        return self._members(a) + self._members(b) + extra > self.max_members

    def _count(self, o: str | None, t: str) -> int:
        return self.g.profiles[o].counts.get(t, 0) if o else 0

    def _window_count(self, o: str, t: str, ts: int, window: int) -> int:
        """Identifiers of type t that joined o within the window before ts."""
        lo = ts - window
        members = self.g.profiles[o].members
        return sum(1 for tv, rec in members.items() if split_tv(tv)[0] == t and rec.since_of() > lo)

    def _violation(self, a: str | None, b: str | None, st: _Pending, ts: int) -> str | None:
        """Would profiles a and b plus the pending identifiers break a limit?"""
        for t in self.limited:
            rule = self.limits[t]
            base = st.pcount.get(t, 0)
            na, nb = self._count(a, t), self._count(b, t)
            if base + na + nb > rule.max and rule.win > 0:
                if na > 0 and a:
                    na = self._window_count(a, t, ts, rule.win)
                if nb > 0 and b:
                    nb = self._window_count(b, t, ts, rule.win)
            if base + na + nb > rule.max:
                return layout.WHY_LIMIT + t
        if self._over_full(a, b, len(st.pend)):
            return layout.WHY_PROFILE_FULL
        return None

    def _add_violation(self, st: _Pending, t: str, ts: int) -> str | None:
        """Would one more identifier of type t fit into st.T plus the pending ones?"""
        o = st.T
        rule = self.limits.get(t)
        if rule and rule.max > 0:
            base = st.pcount.get(t, 0) + 1
            n = self._count(o, t)
            if base + n > rule.max and rule.win > 0 and n > 0 and o:
                n = self._window_count(o, t, ts, rule.win)
            if base + n > rule.max:
                return layout.WHY_LIMIT + t
        if self._over_full(o, None, len(st.pend) + 1):
            return layout.WHY_PROFILE_FULL
        return None

    def _holds_trusted(self, o: str) -> bool:
        """Does o hold an identifier of a non-anonymous type that a trusted event asserted?"""
        members = self.g.profiles[o].members
        anonymous = self.anonymous_types
        return any(split_tv(m)[0] not in anonymous and not rec.untrusted for m, rec in members.items())

    def _never_merge(self, a: str, b: str) -> bool:
        g = self.g
        return any(g.resolve_alias(x) == b for x in g.profiles[a].never) or any(
            g.resolve_alias(x) == a for x in g.profiles[b].never
        )

    # ---- writes ----

    @staticmethod
    def _join_now(members: dict[str, Rec], ts: int) -> None:
        """A profile without a person joins one: its identifiers' "since" becomes now."""
        for rec in members.values():
            if rec.since_of() != ts:
                rec.set_since(ts)

    def _attach(self, o: str, tv: str, anchor: str | None, ev: Event, fresh: bool = False) -> None:
        profile = self.g.profiles[o]
        t, v = split_tv(tv)
        parent = parent_hash(anchor) if anchor else ""
        profile.members[tv] = Rec(ev.ts, ev.msg, parent, untrusted=ev.untrusted)
        profile.counts[t] = profile.counts.get(t, 0) + 1
        # a stronger identifier: the profile is no longer anonymous (never collected from now on)
        if t not in self.anonymous_types and o != self.created_now:
            self.g.anonymous.pop(o, None)
        if t == self.pk and profile.person is None:
            profile.person = v
            if not fresh:
                self._join_now(profile.members, ev.ts)
        self.g.index[tv] = o

    def _create(self, tv: str, ev: Event) -> str:
        o = self.g.new_id(tv)
        self.created_now = o
        self.g.profiles[o] = Profile(created=ev.ts)
        self._attach(o, tv, None, ev, fresh=True)
        return o

    @staticmethod
    def _reroot(members: dict[str, Rec], xtv: str, anchor: str, ev: Event) -> None:
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
            child, mine = members[path[i - 1]], members[path[i]]
            rec = Rec(child.ts, child.msg, parent_hash(path[i - 1]), untrusted=mine.untrusted)
            rec.set_since(mine.since_of())
            members[path[i]] = rec
        # an identifier once asserted by a trusted event stays trusted
        old = members.get(xtv)
        untrusted = ev.untrusted and old is not None and old.untrusted
        members[xtv] = Rec(ev.ts, ev.msg, parent_hash(anchor), untrusted=untrusted)

    def _merge(self, T: str, o: str, xtv: str, anchor: str, ev: Event, t: str) -> str:
        """Fold profiles T and o into the older one (creation time, then id): replays agree."""
        g = self.g
        pt, po = g.profiles[T], g.profiles[o]
        if pt.created < po.created or (pt.created == po.created and o > T):
            surv, lose = T, o
        else:
            surv, lose = o, T
        # the loser leaves the anonymous set; the survivor stays in it only if both were anonymous
        lost = g.anonymous.pop(lose, None)
        if lost is None:
            g.anonymous.pop(surv, None)
        elif surv in g.anonymous and lost > g.anonymous[surv]:
            g.anonymous[surv] = lost
        self._reroot(po.members, xtv, anchor, ev)
        if pt.person and not po.person:
            self._join_now(po.members, ev.ts)
        elif po.person and not pt.person:
            self._join_now(pt.members, ev.ts)
        ps, pl = g.profiles[surv], g.profiles[lose]
        brought = sorted(pl.members)
        for m in brought:
            ps.members[m] = pl.members[m]
            g.index[m] = surv
        for type_, k in pl.counts.items():
            if k:
                ps.counts[type_] = ps.counts.get(type_, 0) + k
        for a in [lose, *pl.aliases]:
            ps.aliases.add(a)
            g.alias[a] = surv
        if ps.person is None and pl.person is not None:
            ps.person = pl.person
        if pl.never:
            ps.never = ps.never + pl.never
        del g.profiles[lose]
        self.merges.append([ev.index, surv, lose, layout.WHY_SHARED + t, brought])
        self.aliased[lose] = surv
        return surv

    # ---- one event ----

    def _conflict(self, st: _Pending, ev: Event, tv: str, o: str, why: str) -> None:
        """tv (in profile o) cannot join st.T: count the people it was seen with, then re-point
        it (shared device/browser, newer login) or record the rejection."""
        g = self.g
        t, v = split_tv(tv)
        if ev.untrusted:  # no evidence about people: no guard count, no re-point
            self.reject(ev, t, v, why)
            return
        rule = self.limits.get(t)
        if t != self.pk:
            po = g.profiles[o].person
            pt = st.pperson
            if st.T:
                pt = g.profiles[st.T].person or pt
            if po and pt and po != pt:
                people = g.guard.setdefault(tv, set())
                h = g.pseudonyms.of(t, v)
                people.update({sha1_hex(f"{h}:{po}")[:12], sha1_hex(f"{h}:{pt}")[:12]})
                if len(people) > (rule.mp if rule else self.default_mp):
                    g.splice_out(o, tv)
                    g.index[tv] = layout.GUARDED
                    del g.guard[tv]
                    self.reject(ev, t, v, layout.WHY_FREQUENCY_GUARD)
                    return
        # a trusted event that cannot join tv's profile disagrees with an untrusted link: it takes
        # tv over; otherwise only a login re-points a shared device/browser it is newer than
        rec = g.profiles[o].members.get(tv)
        takeover = rec is not None and rec.untrusted
        if takeover or (rule and rule.rep and why != layout.WHY_UNMERGED and st.pk):
            if not takeover and rec and ev.ts <= rec.since_of():
                self.reject(ev, t, v, layout.WHY_NEWER_LINK)
                return
            why2 = self._add_violation(st, t, ev.ts)
            if why2:
                self.reject(ev, t, v, why2)
                return
            g.splice_out(o, tv)
            g.index.pop(tv, None)
            if st.T:
                self._attach(st.T, tv, st.anchor, ev)
                self.moves.append([ev.index, t, v, o, st.T])
            else:
                st.add(t, tv)
                self.moves.append([ev.index, t, v, o, ""])
                st.fill.append(len(self.moves) - 1)
            return
        self.reject(ev, t, v, why)

    def _trust_up(self, T: str, ids: list[str]) -> None:
        """A trusted event re-asserting untrusted identifiers of its profile trusts them."""
        members = self.g.profiles[T].members
        for j in range(0, len(ids), 2):
            tv = f"{ids[j]}:{ids[j + 1]}"
            if self.g.index.get(tv) == T and tv in members:
                members[tv].untrusted = False

    def _refresh_since(self, T: str, ids: list[str], ts: int) -> None:
        """A login is fresh evidence that its shared identifiers belong to this person: their
        "since" moves up (at most every REFRESH_MS)."""
        index = self.g.index
        pairs = list(zip(ids[::2], ids[1::2], strict=True))
        if not any(t == self.pk and index.get(f"{t}:{v}") == T for t, v in pairs):
            return
        members = self.g.profiles[T].members
        for t, v in pairs:
            rule = self.limits.get(t)
            tv = f"{t}:{v}"
            if rule and rule.rep and index.get(tv) == T and tv in members:
                rec = members[tv]
                if ts > rec.since_of() + REFRESH_MS:
                    rec.set_since(ts)

    def _seen_anonymous(self, T: str, ids: list[str]) -> None:
        """An event whose identifiers in T are all anonymous moves T's last seen (receipt) time
        up when T is in the anonymous set; a profile it created from them joins the set."""
        for j in range(0, len(ids), 2):
            if ids[j] not in self.anonymous_types and self.g.index.get(f"{ids[j]}:{ids[j + 1]}") == T:
                return
        seen = self.g.anonymous.get(T)
        if self.created_now == T or (seen is not None and self.seen_ms > seen):
            self.g.anonymous[T] = self.seen_ms

    def _resolve_event(self, ev: Event, ids: list[str]) -> str | None:
        st = _Pending()
        for j in range(0, len(ids), 2):
            t, v = ids[j], ids[j + 1]
            tv = f"{t}:{v}"
            o = self.g.index.get(tv)
            if o == layout.GUARDED:
                self.reject(ev, t, v, layout.WHY_FREQUENCY_GUARD)
            elif not o:
                why = self._add_violation(st, t, ev.ts)
                if why:
                    self.reject(ev, t, v, why)
                else:
                    st.add(t, tv)
                    if t == self.pk:
                        st.pperson, st.pk = v, True
            elif o == st.T:
                if t == self.pk:
                    st.pk = True
            else:
                why = None
                if st.T is None:
                    if st.pend:
                        why = self._violation(None, o, st, ev.ts)
                elif self._never_merge(st.T, o):
                    why = layout.WHY_UNMERGED
                elif ev.untrusted and self._holds_trusted(st.T) and self._holds_trusted(o):
                    why = layout.WHY_UNTRUSTED_MERGE
                else:
                    why = self._violation(st.T, o, st, ev.ts)
                if why:
                    self._conflict(st, ev, tv, o, why)
                elif st.T is None:
                    st.T, st.anchor = o, tv
                    if t == self.pk:
                        st.pk = True
                else:
                    assert st.anchor is not None
                    st.T = self._merge(st.T, o, tv, st.anchor, ev, t)
        pending = st.pend
        if st.T is None and pending:
            st.T = self._create(pending[0], ev)
            st.anchor = pending[0]
            pending = pending[1:]
        for tv in pending:
            assert st.T is not None
            self._attach(st.T, tv, st.anchor, ev)
        for k in st.fill:
            self.moves[k][4] = st.T
        if st.T:
            if not ev.untrusted:
                self._trust_up(st.T, ids)
                self._refresh_since(st.T, ids, ev.ts)
            self._seen_anonymous(st.T, ids)
        return st.T
