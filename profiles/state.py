"""One profile as the engine sees it: parsed from its Redis hashes, changed by ops.

Every change goes through a method here that (1) changes this in-memory copy, so later
events of the same batch see it, and (2) records the op the Lua ``apply`` command replays
atomically in Redis, guarded by the event's Kafka offset. The two sides implement the same
small op set (``profiles/lua/apply.lua`` has the Lua half), which keeps one round trip per batch. The
copy also records which fields its ops touch (``apply`` loads only those) and which fields
became unreadable (:meth:`prune`), so Redis never scans a whole profile.

The hash fields and op codes are declared in :mod:`profiles.layout` (the Lua half gets them
as constants from there).
"""

from __future__ import annotations

import json
from typing import Any

from profiles import aggregates as agg
from profiles import jsonsafe, scoring
from profiles import layout as L
from profiles.dwell import View

Op = list[Any]


class ProfileState:
    """The engine's copy of one profile (see module doc).

    Parsing is lazy: the reply is kept as a dict and each category (traits, buckets, tags,
    fired keys...) is decoded the first time the engine reads it, because most events read
    only a few fields of a profile.
    """

    _LAZY = ("traits", "buckets", "tags", "cooldowns", "fired", "merged", "offsets", "segments")

    def __init__(self, oneid: str) -> None:
        self.oneid = oneid
        self.exists = False
        self.first_seen: int | None = None
        self.last_seen: int | None = None
        self.last_interaction: int | None = None
        self.partition: int | None = None
        self.pruned_at: int | None = None
        self.score: scoring.Score | None = None
        self.tier: str | None = None
        self.merge_gen = ""  # the ``mg`` field as read: segment ops are applied only if it is unchanged
        self.views: dict[str, View] = {}
        self.raw_views: dict[str, str] = {}
        self.delayed: dict[str, dict[str, Any]] = {}
        self.groups: list[list[Any]] = []
        self.touched: set[str] = set()
        self.pruned: list[str] = []
        self.traits_version = 0
        self.attribute_points: tuple[int, float] | None = None  # (traits_version, points): engine cache
        self._seen_range: tuple[int, int, int | None] | None = None
        self._batch_offsets: dict[str, int] = {}
        self._pending_adds: list[tuple[str, str, int, Any]] = []
        self._bucket_views: dict[str, dict[int, Any]] = {}  # buckets_of before a full parse
        self._tag_view: dict[str, int] | None = None  # _tag_table before a full parse
        self._binary = True
        self._decoded_traits: dict[str, Any] = {}
        self._raw: dict[Any, Any] = {}
        self._kinds: dict[str, tuple[str, str]] = {}
        self._parsed = True
        self._init_lazy()

    def _init_lazy(self) -> None:
        self.__dict__["traits"] = {}
        self.__dict__["buckets"] = {}
        self.__dict__["tags"] = {}
        self.__dict__["cooldowns"] = {}
        self.__dict__["fired"] = {}
        self.__dict__["merged"] = []
        self.__dict__["offsets"] = {}
        self.__dict__["segments"] = {}  # stream segment -> member since (ms)

    def __getattr__(self, name: str) -> Any:
        # only called for the lazy categories before the first parse (see _init_lazy)
        if name in ProfileState._LAZY and not self.__dict__.get("_parsed", True):
            self._parse_categories()
            return self.__dict__[name]
        raise AttributeError(name)

    # -- parsing -----------------------------------------------------------------------------
    @classmethod
    def parse(
        cls,
        oneid: str,
        main: list[Any] | dict[Any, Any],
        transient: list[Any] | dict[Any, Any],
        kinds: dict[str, tuple[str, str]],
    ) -> ProfileState:
        """Build from the two hashes (flat replies or dicts); ``kinds``: storage id -> (name, kind)."""
        st = cls(oneid)
        raw = main if isinstance(main, dict) else dict(zip(main[::2], main[1::2], strict=True))
        if not raw:
            return st
        st.exists = True
        st._raw = raw
        st._kinds = kinds
        binary = isinstance(next(iter(raw)), bytes)
        st._binary = binary

        def scalar(name: str) -> str | None:
            value = raw.get(name.encode() if binary else name)
            if value is None:
                return None
            return value.decode() if isinstance(value, bytes) else value

        for name, attr in (
            (L.FIRST_SEEN, "first_seen"),
            (L.LAST_SEEN, "last_seen"),
            (L.LAST_INTERACTION, "last_interaction"),
            (L.PARTITION, "partition"),
            (L.PRUNED_AT, "pruned_at"),
        ):
            value = scalar(name)
            if value is not None:
                setattr(st, attr, int(value))
        score = scalar(L.SCORE)
        st.score = scoring.decode(score) if score is not None else None
        st.tier = scalar(L.TIER)
        st.merge_gen = scalar(L.MERGE_GEN) or ""
        for name in cls._LAZY:
            del st.__dict__[name]
        st._parsed = False
        transient_items = (
            transient.items()
            if isinstance(transient, dict)
            else zip(transient[::2], transient[1::2], strict=True)
        )
        for key, value in transient_items:
            f = key.decode() if isinstance(key, bytes) else key
            v = value.decode() if isinstance(value, bytes) else value
            if f[:2] == L.VIEW:
                st.views[f[2:]] = View.from_json(f[2:], v)
                st.raw_views[f[2:]] = v
            elif f[:2] == L.DELAYED:
                st.delayed[f[2:]] = json.loads(v)
        return st

    def offset(self, guard: str) -> int:
        """The offset applied so far under a guard (-1: none), without parsing the rest.

        A guard is ``"<partition>"`` for events stamped with this OneID and
        ``"<partition>:<oneid>"`` for events stamped with an alias merged into it: each stamped
        OneID's events arrive in offset order within a partition, so each guard is a watermark.
        """
        found = self._batch_offsets.get(guard)
        if found is not None:
            return found
        if self._parsed:
            return self.offsets.get(guard, -1)
        value = self._raw.get(self._key(L.OFFSET + guard))
        return int(value) if value is not None else -1

    def advance(self, guard: str, offset: int) -> None:
        self._batch_offsets[guard] = offset

    def member_of(self, segment: str) -> bool:
        """Whether Redis held this profile in a stream segment when it was read (cheap: no parse)."""
        if self._parsed:
            return segment in self.segments
        return self._key(L.SEGMENT + segment) in self._raw

    def _key(self, name: str) -> Any:
        return name.encode() if self._binary else name

    def trait_text(self, name: str) -> str | None:
        """A trait's JSON text (None: absent), without parsing the other categories."""
        if self._parsed:
            found = self.traits.get(name)
            return found[1] if found else None
        value = self._raw.get(self._key(L.TRAIT + name))
        if value is None:
            return None
        return agg.unstamp(value.decode() if isinstance(value, bytes) else value)[1]

    def _parse_categories(self) -> None:
        self._parsed = True
        self._init_lazy()
        kinds = self._kinds
        traits, buckets, tags, fired = self.traits, self.buckets, self.tags, self.fired
        for key, value in self._raw.items():
            f = key.decode() if isinstance(key, bytes) else key
            head = f[:2]
            if head[1:] != ":":
                continue
            v = value.decode() if isinstance(value, bytes) else value
            if head == L.BUCKET:
                sid, _, idx = f[2:].rpartition(":")
                known = kinds.get(sid)
                if known is not None:
                    kind = known[1]
                    bucket = buckets.get(known[0])
                    if bucket is None:
                        bucket = buckets[known[0]] = {}
                    bucket[int(idx)] = int(v) if kind == "n" and v.isdigit() else agg.decode(kind, v)
            elif head == L.TRAIT:
                traits[f[2:]] = agg.unstamp(v)
            elif head == L.FIRED_KEY:
                fired[f[2:]] = int(v)
            elif head == L.TAG:
                tags[f[2:]] = int(v)
            elif head == L.OFFSET:
                self.offsets[f[2:]] = int(v)
            elif head == L.COOLDOWN:
                self.cooldowns[f[2:]] = int(v)
            elif head == L.MERGED:
                self.merged.append(f[2:])
            elif head == L.SEGMENT:
                self.segments[f[2:]] = int(v)
        self._raw = {}
        self._bucket_views = {}
        self._tag_view = None
        for name, kind, idx, contribution in self._pending_adds:
            bucket = buckets.setdefault(name, {})
            bucket[idx] = agg.combine(kind, bucket.get(idx), contribution)
        self._pending_adds = []

    # -- reading -----------------------------------------------------------------------------
    def trait(self, name: str) -> Any:
        if name in self._decoded_traits:
            return self._decoded_traits[name]
        text = self.trait_text(name)
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:  # not written by this engine: treat as absent
            value = None
        self._decoded_traits[name] = value
        return value

    def active_tags(self, as_of: int) -> list[str]:
        return sorted(t for t, exp in self._tag_table().items() if exp == 0 or exp > as_of)

    def buckets_of(self, name: str, sid: str, kind: str) -> dict[int, Any]:
        """One aggregate's buckets without parsing the rest (segments read the tier's aggregate of
        every profile a batch changes): this batch's adds included, nothing stored changed."""
        if self._parsed:
            return self.buckets.get(name, {})
        cached = self._bucket_views.get(name)
        if cached is not None:
            return cached
        prefix = self._key(f"{L.BUCKET}{sid}:")
        width = len(prefix)
        out: dict[int, Any] = {}
        for key, value in self._raw.items():
            if key[:width] == prefix:
                text = value.decode() if isinstance(value, bytes) else value
                idx = int(key[width:])
                out[idx] = int(text) if kind == "n" and text.isdigit() else agg.decode(kind, text)
        for added, _, idx, contribution in self._pending_adds:
            if added == name:
                out[idx] = agg.combine(kind, out.get(idx), contribution)
        self._bucket_views[name] = out
        return out

    def tag_expiries(self) -> dict[str, int]:
        """Tag -> expiry (ms, 0: never), without parsing the rest (segment timers read them)."""
        return self._tag_table()

    def _tag_table(self) -> dict[str, int]:
        """The tags without parsing the rest (segments read tags of every profile a batch changes)."""
        if self._parsed:
            return self.tags
        if self._tag_view is not None:
            return self._tag_view
        prefix = self._key(L.TAG)
        out: dict[str, int] = {}
        for key, value in self._raw.items():
            if key[:2] == prefix:
                name = key[2:]
                out[name.decode() if isinstance(name, bytes) else name] = int(value)
        self._tag_view = out  # tags only change after a full parse (tag() reads self.tags)
        return out

    # -- ops: each changes this copy and records the op for Lua ----------------------------------
    def begin(self, offset: int, guard: str | None = None) -> None:
        """Start the op group of one event (``offset`` -1: not guarded, used by timers)."""
        self.groups.append([offset, [], guard] if guard is not None else [offset, []])

    def _op(self, op: Op) -> None:
        if not self.groups:
            self.begin(-1)
        self.groups[-1][1].append(op)

    def seen(self, ts: int, interaction: bool) -> None:
        self.exists = True
        self.first_seen = ts if self.first_seen is None or ts < self.first_seen else self.first_seen
        self.last_seen = ts if self.last_seen is None or ts > self.last_seen else self.last_seen
        if interaction and (self.last_interaction is None or ts > self.last_interaction):
            self.last_interaction = ts
        self.touched.update((L.FIRST_SEEN, L.LAST_SEEN, L.LAST_INTERACTION))
        # one S op per profile and batch: min/max of event times is the same however often
        # (and in whichever group) it is applied, so replays cannot distort it
        self._seen_range = (
            (ts, ts, ts if interaction else None)
            if self._seen_range is None
            else (
                min(self._seen_range[0], ts),
                max(self._seen_range[1], ts),
                ts
                if interaction and (self._seen_range[2] is None or ts > self._seen_range[2])
                else self._seen_range[2],
            )
        )

    def set_trait(self, name: str, ts: int, payload: str) -> None:
        current = self.traits.get(name)
        if current is None or ts >= current[0]:
            self.traits[name] = (ts, payload)
            self._decoded_traits.pop(name, None)
            self.traits_version += 1
        self.touched.add(L.TRAIT + name)
        self._op([L.OP_TRAIT, name, ts, agg.stamped(ts, payload)])

    def add(self, name: str, sid: str, kind: str, idx: int, contribution: Any) -> None:
        field = f"{L.BUCKET}{sid}:{idx}"
        self.touched.add(field)
        if not self._parsed:  # applied to the copy when (if) buckets are first read
            self._pending_adds.append((name, kind, idx, contribution))
            self._bucket_views.pop(name, None)
            self._op([L.OP_BUCKET, field, kind, agg.encode(kind, contribution)])
            return
        buckets = self.buckets.get(name)
        if buckets is None:
            buckets = self.buckets[name] = {}
        if kind == "n" and isinstance(contribution, int):  # counts: the common case
            buckets[idx] = buckets.get(idx, 0) + contribution
            self._op([L.OP_BUCKET, field, kind, str(contribution)])
            return
        buckets[idx] = agg.combine(kind, buckets.get(idx), contribution)
        self._op([L.OP_BUCKET, field, kind, agg.encode(kind, contribution)])

    def tag(self, name: str, expiry: int) -> None:
        """Set or extend a tag (0: never expires)."""
        current = self.tags.get(name)
        if current != 0 and (current is None or expiry == 0 or expiry > current):
            self.tags[name] = expiry
        self.touched.add(L.TAG + name)
        self._op([L.OP_TAG, name, expiry])

    def add_points(self, points: float, ts: int, half_life_ms: int) -> None:
        value, ref = scoring.add_points(self.score, points, ts, half_life_ms)
        self.score = (float(f"{value:.10g}"), ref)
        self.touched.add(L.SCORE)
        self._op([L.OP_POINTS, points, ts, half_life_ms])

    def set_tier(self, tier: str | None, expect: str | None = None, *, guarded: bool = False) -> None:
        """Record the tier assigned; ``guarded`` applies it only if Redis still holds ``expect``."""
        op: Op = [L.OP_TIER, tier or ""]
        if guarded:
            op.append(expect or "")
        self.tier = tier
        self.touched.add(L.TIER)
        self._op(op)

    def set_view(self, sid: str, view: View | None, *, expect: str | None = None) -> None:
        """Store/replace/drop the open view of a session and its timer (``expect``: compare-and-set)."""
        payload = view.to_json() if view is not None else ""
        due = view.due_ms() if view is not None else None
        op: Op = [L.OP_VIEW, sid, payload, -1 if due is None else due]
        if expect is not None:
            op.append(expect)
        if view is None:
            self.views.pop(sid, None)
            self.raw_views.pop(sid, None)
        else:
            self.views[sid] = view
            self.raw_views[sid] = payload
        self._op(op)

    def schedule(self, timer_id: str, payload: dict[str, Any], due: int) -> None:
        self.delayed[timer_id] = payload
        self._op([L.OP_SCHEDULE, timer_id, jsonsafe.dumps(payload), due])

    def unschedule(self, timer_id: str) -> None:
        self.delayed.pop(timer_id, None)
        self._op([L.OP_UNSCHEDULE, timer_id])

    def inactivity(self, due: int | None, *, expect: float | None = None) -> None:
        op: Op = [L.OP_INACTIVITY, -1 if due is None else due]
        if expect is not None:
            op.append(expect)
        self._op(op)

    def fire(
        self,
        key16: str,
        rule: str,
        cooldown_until: int,
        event_time: int,
        key_expiry: int,
        entry: str,
        index: int,
    ) -> None:
        self.fired[key16] = key_expiry
        if cooldown_until:
            self.cooldowns[rule] = cooldown_until
        self.touched.update((L.COOLDOWN + rule, L.FIRED_KEY + key16))
        self._op([L.OP_FIRE, key16, rule, cooldown_until, event_time, key_expiry, entry, index])

    def prune(
        self,
        windows: dict[str, tuple[str, int, int]],
        lateness_ms: int,
        max_tags: int,
        every_ms: int = 3_600_000,
    ) -> None:
        """Forget what no accepted event can read any more, as of the last event time.

        ``windows``: aggregate name -> (storage id, window ms, bucket ms). Buckets older than
        the window (allowing for late events), expired tags, idempotency keys and cooldowns
        go, and the oldest-expiring tags beyond ``max_tags``. Redis deletes the same fields.
        Runs when the profile's last event is ``every_ms`` past the previous prune: readers
        check expiry themselves, so pruning late only frees memory late, and skipping it
        spares parsing the whole profile on most batches.
        """
        ls = self.last_seen
        if ls is None or (self.pruned_at is not None and ls - self.pruned_at < every_ms):
            return
        self.pruned_at = ls
        self.touched.add(L.PRUNED_AT)
        self._op([L.OP_MAX, L.PRUNED_AT, ls])
        out = self.pruned
        for name, buckets in self.buckets.items():
            spec = windows.get(name)
            if spec is None or not spec[1]:
                continue
            keep = agg.keep_from(ls, lateness_ms, spec[1], spec[2])
            if keep is None:
                continue
            for idx in [i for i in buckets if i < keep]:
                del buckets[idx]
                out.append(f"{L.BUCKET}{spec[0]}:{idx}")
        for prefix, table in ((L.TAG, self.tags), (L.FIRED_KEY, self.fired), (L.COOLDOWN, self.cooldowns)):
            for key in [k for k, exp in table.items() if exp and exp <= ls]:
                del table[key]
                out.append(prefix + key)
        if max_tags and len(self.tags) > max_tags:
            by_expiry = sorted(self.tags, key=lambda t: self.tags[t] or float("inf"))
            for tag in by_expiry[: len(self.tags) - max_tags]:
                del self.tags[tag]
                out.append(L.TAG + tag)

    # -- payload -----------------------------------------------------------------------------
    def payload(self, *, partition: int | None = None, must_exist: bool = False) -> dict[str, Any] | None:
        """This profile's entry of an ``apply`` call, or None when there is nothing to send."""
        groups = [g for g in self.groups if g[1] or g[0] >= 0]
        if not groups and not self.pruned:
            return None
        if self._seen_range is not None and groups:
            first, last, interaction = self._seen_range
            seen: list[Op] = [[L.OP_SEEN, first, 0], [L.OP_SEEN, last, 0]]
            if interaction is not None:
                seen.append([L.OP_SEEN, interaction, 1])
            groups[-1] = [groups[-1][0], seen + groups[-1][1], *groups[-1][2:]]
        fields = sorted(self.touched | {L.PARTITION})
        entry: dict[str, Any] = {"id": self.oneid, "groups": groups, "fields": fields}
        if self.pruned:
            entry["prune"] = self.pruned
        if partition is not None:
            entry["pt"] = partition
        if must_exist:
            entry["must_exist"] = True
        return entry
