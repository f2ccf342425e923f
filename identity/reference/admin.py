"""Operator actions of graph_admin.lua on the graph state: split, erase, collect idle."""

from __future__ import annotations

from identity.exceptions import NotLinkedError, ProfileNotFoundError, UnmergeError
from identity.graph import COLLECT_RUN, EventRef, UnmergeResult
from identity.reference.state import GraphState, Profile, Rec, parent_hash, split_tv


def live(g: GraphState, oneid: str) -> str:
    o = g.resolve_alias(oneid)
    if o not in g.profiles:
        raise ProfileNotFoundError(f"no live profile {oneid}")
    return o


def delete_profile(g: GraphState, oneid: str, suppress_ms: int = 0) -> list[dict[str, str]]:
    """Erase the profile; the survivor and its aliases are tombstoned (never issued again); its
    identifiers are suppressed for events received until now (the clock) + ``suppress_ms``."""
    o = live(g, oneid)
    now = g.clock()
    names = sorted(g.profiles[o].members)
    g.erased |= {o, *g.profiles[o].aliases}
    for tv in names:
        if g.index.get(tv) == o:
            del g.index[tv]
        g.guard.pop(tv, None)
        type_, value = split_tv(tv)
        g.suppressed[f"{type_}:{g.pseudonyms.of(type_, value)}"] = now + suppress_ms
    g.drop(o)
    return [{"type": t, "value": v} for t, v in map(split_tv, names)]


def unmerge(g: GraphState, oneid: str, type_: str, value: str) -> UnmergeResult:
    """The identifier and everything linked through it leave for a new profile; the two are never
    merged again."""
    o = live(g, oneid)
    xtv = f"{type_}:{value}"
    if g.index.get(xtv) != o:
        raise NotLinkedError(f"identifier not in {o}")
    old = g.profiles[o]
    moved = _subtree(old, xtv)
    if len(moved) >= len(old.members):
        raise UnmergeError(f"every identifier of {o} came through this one")
    new = g.new_id(xtv)
    split = Profile(created=min(old.members[m].ts for m in moved), never=[o])
    refs: list[EventRef] = []
    for m in moved:
        rec = old.members.pop(m)
        if m == xtv:
            rec = Rec(rec.ts, rec.msg, "", rec.since, rec.untrusted)
        split.members[m] = rec
        if rec.msg not in {r.message_id for r in refs}:
            refs.append(EventRef(rec.msg, rec.ts))
        g.index[m] = new
    g.profiles[new] = split
    _recount(g, old)
    _recount(g, split)
    old.never = [*old.never, new]
    # part of an anonymous profile is anonymous (same last seen); a side of a stronger one that
    # kept only anonymous identifiers becomes collectable (last seen: now)
    if o in g.anonymous:
        g.anonymous[new] = g.anonymous[o]
    else:
        now = g.clock()
        if g.only_anonymous(old.members):
            g.anonymous[o] = now
        if g.only_anonymous(split.members):
            g.anonymous[new] = now
    return UnmergeResult(
        oneid=o,
        new_oneid=new,
        identifiers=[{"type": t, "value": v} for t, v in map(split_tv, moved)],
        message_ids=[r.message_id for r in refs],
        events=refs,
    )


def _subtree(profile: Profile, xtv: str) -> list[str]:
    """xtv and every identifier linked through it, sorted."""
    byh = {parent_hash(m): m for m in profile.members}
    children: dict[str, list[str]] = {}
    for m in sorted(profile.members):
        p = byh.get(profile.members[m].parent)
        if p and p != m:
            children.setdefault(p, []).append(m)
    moved, inside, k = [xtv], {xtv}, 0
    while k < len(moved):
        for c in children.get(moved[k], ()):
            if c not in inside:
                inside.add(c)
                moved.append(c)
        k += 1
    return sorted(moved)


def _recount(g: GraphState, profile: Profile) -> None:
    counts: dict[str, int] = {}
    people = []
    for m in profile.members:
        type_, value = split_tv(m)
        counts[type_] = counts.get(type_, 0) + 1
        if type_ == g.rules.person_key:
            people.append(value)
    profile.counts = counts
    profile.person = min(people) if people else None


def collect_idle_anonymous(g: GraphState, now_ms: int, idle_ms: int, limit: int = 500) -> list[str]:
    """Remove anonymous-only profiles last seen before ``now_ms - idle_ms``, oldest first, in runs
    of COLLECT_RUN like IdentityGraph.collect_idle_anonymous."""
    cutoff = int(now_ms) - int(idle_ms)
    collected: list[str] = []
    while len(collected) < limit:
        run = min(COLLECT_RUN, limit - len(collected))
        idle = sorted((seen, o) for o, seen in g.anonymous.items() if seen < cutoff)[:run]
        for _, o in idle:
            del g.anonymous[o]
            profile = g.profiles.get(o)
            if profile and profile.members and profile.person is None and g.only_anonymous(profile.members):
                for m in profile.members:
                    if g.index.get(m) == o:
                        del g.index[m]
                g.drop(o)
                collected.append(o)
        if len(idle) < run:
            break
    g.collected += len(collected)
    return collected
