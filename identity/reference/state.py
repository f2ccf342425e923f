"""The graph's state in memory and the helpers both scripts share (graph_lib.lua's half).

One dict per Redis structure of identity/layout.py, mutated the way the Lua mutates Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from identity import layout
from identity.graph import Edge, EventRef
from identity.rules import IdentityRules
from touchstream.pseudonyms import Pseudonyms


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324 - ids, not security


def parent_hash(tv: str) -> str:
    """How an edge names its anchor: the first 8 hex of sha1("type:value")."""
    return sha1_hex(tv)[:8]


def split_tv(tv: str) -> tuple[str, str]:
    type_, _, value = tv.partition(":")
    return type_, value


@dataclass
class Rec:
    """One edge: the linking event, its anchor's short hash ("" for a root), when the
    identifier joined its person (0: ``ts``) and whether only untrusted events asserted it."""

    ts: int
    msg: str
    parent: str
    since: int = 0
    untrusted: bool = False

    def since_of(self) -> int:
        return self.since if self.since else self.ts

    def set_since(self, ts: int) -> None:
        self.since = ts if self.ts != ts else 0


@dataclass
class Profile:
    """A profile hash: identifiers ("type:value" -> edge) and the F_* fields."""

    created: int
    members: dict[str, Rec] = field(default_factory=dict)
    person: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)
    never: list[str] = field(default_factory=list)


@dataclass
class GraphState:
    """Everything the scripts read and write, under one graph's base key."""

    rules: IdentityRules
    #: Redis's TIME where a script reads it (a profile left anonymous, a split, a deletion)
    clock: Callable[[], int]
    #: the deployment's keyed pseudonyms: new OneIDs, guard sets and suppression entries
    pseudonyms: Pseudonyms
    index: dict[str, str] = field(default_factory=dict)  # "type:value" -> OneID or GUARDED
    profiles: dict[str, Profile] = field(default_factory=dict)
    alias: dict[str, str] = field(default_factory=dict)  # merged OneID -> survivor
    guard: dict[str, set[str]] = field(default_factory=dict)  # "type:value" -> short hashes of people
    suppressed: dict[str, int] = field(default_factory=dict)  # "type:" + pseudonym -> suppressed until ms
    erased: set[str] = field(default_factory=set)  # tombstoned OneIDs: never issued again
    anonymous: dict[str, int] = field(default_factory=dict)  # anonymous-only OneID -> last seen (ms)
    collected: int = 0

    def lookup(self, type_: str, value: str) -> str | None:
        found = self.index.get(f"{type_}:{value}")
        return None if found is None or found == layout.GUARDED else found

    def resolve_alias(self, oneid: str) -> str:
        for _ in range(16):
            survivor = self.alias.get(oneid)
            if survivor is None:
                return oneid
            oneid = survivor
        return oneid

    def edges(self, oneid: str) -> list[Edge]:
        """Like IdentityGraph.edges, without partition/offset (the reference does not keep them)."""
        profile = self.profiles[self.resolve_alias(oneid)]
        byh = {parent_hash(m): m for m in profile.members}
        out = []
        for tv in sorted(profile.members):
            rec = profile.members[tv]
            type_, value = split_tv(tv)
            parent = byh.get(rec.parent)
            anchor = split_tv(parent) if parent else None
            ref = EventRef(rec.msg, rec.ts)
            out.append(Edge(type_, value, ref, anchor, rec.since_of(), not rec.untrusted))
        return out

    def only_anonymous(self, members: Iterable[str]) -> bool:
        return all(split_tv(m)[0] in self.rules.anonymous_types for m in members)

    def new_id(self, tv: str) -> str:
        """A hash of the creating identifier's pseudonym, probed past ids in use (live, aliased
        or erased)."""
        seed = self.pseudonyms.of(*split_tv(tv))
        for n in range(65):
            cand = layout.ONEID_PREFIX + sha1_hex(seed if n == 0 else f"{seed}#{n}")[:16]
            if cand not in self.profiles and cand not in self.alias and cand not in self.erased:
                return cand
        raise RuntimeError("no free OneID for an identifier after 64 probes")

    def drop(self, o: str) -> None:
        """A profile emptied (or erased) goes with its aliases."""
        for a in self.profiles[o].aliases:
            self.alias.pop(a, None)
        del self.profiles[o]
        self.anonymous.pop(o, None)

    def splice_out(self, o: str, tv: str) -> None:
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
            self.drop(o)
            return
        del profile.members[tv]
        t, v = split_tv(tv)
        profile.counts[t] = profile.counts.get(t, 0) - 1
        # losing its last non-anonymous identifier makes the profile collectable (last seen: now)
        stronger = t not in self.rules.anonymous_types
        if stronger and o not in self.anonymous and self.only_anonymous(profile.members):
            self.anonymous[o] = self.clock()
        pk = self.rules.person_key
        if t == pk and profile.person == v:
            others = [split_tv(m)[1] for m in profile.members if split_tv(m)[0] == pk]
            profile.person = min(others) if others else None
