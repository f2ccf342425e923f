"""Profile state in Redis: the adapter between the engine and the profile script (``profiles/lua/``).

A batch of resolved events from one partition costs two script calls, whatever its size:
``read`` (the touched profiles, following merge redirects) and ``apply`` (every change of
the batch, applied atomically and guarded per event by the Kafka offset stored per
partition in the profile, so a replayed batch changes nothing and fires nothing). ``apply``
loads only the fields its ops touch (HMGET) and deletes the fields the engine found stale,
so Redis never scans a profile. Trigger
cooldowns and idempotency keys are checked again inside ``apply``; only triggers Redis
confirms are returned. The timer sweep (:meth:`ProfileStore.close_expired`) is the same
pair (``due`` + ``apply``).

Keys and fields are declared once in :mod:`profiles.layout`; the script is built by
:mod:`profiles.script` from ``profiles/lua/`` (one file per command).

:class:`ProfileStore` takes a ``redis.Redis`` (the worker calls it from a thread); its steps are
a generator yielding Redis requests, so an asyncio driver is a small class if one is needed.
The commands touch many profiles per call, which is right for one Redis; for Redis Cluster
the keys are already hash-tagged, and an adapter would split a batch by slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from profiles import jsonsafe, layout, script
from profiles.engine import Engine
from profiles.result import BatchResult
from profiles.rules.model import Rules
from profiles.rules.reload import RuleSet
from profiles.segments import records as segment_records
from profiles.state import ProfileState
from profiles.triggers import records
from touchstream import metrics

log = logging.getLogger(__name__)

SCRIPT = script.SCRIPT  # kept importable from here
SCRIPT_SHA = script.SCRIPT_SHA

Request = tuple[Any, ...]
Steps = Generator[Request, Any, Any]

SEGMENT_ATTEMPTS = 4  # evaluations of a profile that keeps changing under them before giving up
SEGMENT_LEASE_MS = 60_000  # a due member claimed by one sweep is skipped by the others this long
SEGMENT_CHUNK = 1000  # SQL segment changes per script run
SEGMENT_SCAN_COUNT = 2000  # keys per step of the scan giving profiles their segment timer
#: A profile whose timers or re-check raised (a data error: a bug or a corrupt hash) is tried again
#: this much later, so it never holds the other profiles' timers; counted and logged meanwhile.
TIMER_RETRY_MS = 3_600_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _oneid(event: Any) -> str | None:
    """The event's OneID when it is usable as a key (the resolve stage's own text), else None."""
    oneid = event.get("oneid") if isinstance(event, dict) else None
    if not isinstance(oneid, str) or not oneid or jsonsafe.fix_text(oneid) is not oneid:
        return None
    return oneid


def parse_member(member: str) -> tuple[str, str, str | None]:
    """A timer member -> (letter, oneid, ref): ``v|id|sid``, ``d|id|tid``, ``i|id``."""
    return layout.parse_timer_member(member)


def _refusal(event: dict[str, Any]) -> dict[str, Any]:
    """What the stage reports of an event refused because its person was erased."""
    return {"oneid": event.get("oneid"), "message_id": event.get("message_id"),
            "timestamp": event.get("timestamp")}


@dataclass(frozen=True)
class ProfileErasure:
    """What :meth:`ProfileStore.erase_profiles` removed: keys, timers and outbox entries (triggers,
    pending segment records); the idempotency keys of the triggers the person's history still
    listed (the webhook sink's done keys are named by them), every OneID visited (aliases found
    through merges) and the segment memberships ended (an exit record each)."""

    keys: int
    timers: int
    outbox: int
    fired_keys: list[str]
    oneids: list[str]
    memberships: int = 0


class _Core:
    """Every operation as steps: yields ``(method, *args)`` requests, receives the replies."""

    def __init__(
        self,
        prefix: str,
        ruleset: RuleSet | Rules,
        due_limit: int,
        *,
        event_time_skew_ms: int = 300_000,
        max_traits_per_profile: int = 500,
    ) -> None:
        self.prefix = prefix
        self.ruleset = ruleset if isinstance(ruleset, RuleSet) else RuleSet.static(ruleset)
        self.due_limit = due_limit
        self.event_time_skew_ms = event_time_skew_ms
        self.max_traits_per_profile = max_traits_per_profile
        self.stats: dict[str, int] = {}
        self._meta: tuple[int, str] | None = None
        self._scanned: str | None = None  # the segment definitions whose scan this process saw done

    # -- keys --------------------------------------------------------------------------------
    def key(self, oneid: str, suffix: str = "") -> str:
        return layout.profile_key(self.prefix, oneid, suffix)

    def profile_keys(self, oneid: str) -> list[str]:
        """Every key that belongs to one profile (the timers zsets are per partition)."""
        return [
            self.key(oneid, suffix)
            for suffix in ("", layout.TRANSIENT_SUFFIX, layout.HISTORY_SUFFIX, layout.REDIRECT_SUFFIX)
        ]

    # -- helpers -----------------------------------------------------------------------------
    def rules(self) -> Rules:
        return self.ruleset.current()

    def engine(self, rules: Rules, now_ms: int) -> Engine:
        return Engine(
            rules,
            now_ms,
            event_time_skew_ms=self.event_time_skew_ms,
            max_traits_per_profile=self.max_traits_per_profile,
        )

    def _meta_json(self, rules: Rules) -> str:
        if self._meta is None or self._meta[0] != id(rules):
            options = rules.options
            meta = {
                "aggs": rules.aggregate_meta,
                "lateness": options.allowed_lateness_ms,
                "history": options.trigger_history,
                "max_tags": options.max_tags,
            }
            self._meta = (id(rules), json.dumps(meta, separators=(",", ":"), allow_nan=False))
        return self._meta[1]

    def _count(self, result: BatchResult) -> None:
        for name in (
            "skipped_replayed",
            "skipped_late",
            "suppressed_marketing",
            "suppressed_cooldown",
            "duplicates",
            "applied",
            "rule_errors",
            "stale_timers",
            "skipped_invalid",
            "traits_dropped",
        ):
            self.stats[name] = self.stats.get(name, 0) + getattr(result, name)
        self.stats["triggers"] = self.stats.get("triggers", 0) + len(result.triggers)
        self.stats["erased"] = self.stats.get("erased", 0) + len(result.erased)
        if result.traits_dropped:
            metrics.PROFILE_TRAITS_DROPPED.inc(result.traits_dropped)

    @staticmethod
    def _states(
        rules: Rules, rows: Sequence[Any]
    ) -> tuple[dict[str, str], dict[str, ProfileState], set[str]]:
        """OneID asked -> resolved, the resolved states, and the asked OneIDs that are erased."""
        kinds = {a.sid: (name, a.kind) for name, a in rules.aggregates.items()}
        alias: dict[str, str] = {}
        states: dict[str, ProfileState] = {}
        erased: set[str] = set()
        for asked, resolved, main, transient, *flags in rows:
            asked, resolved = _text(asked), _text(resolved)
            alias[asked] = resolved
            if flags and int(flags[0]):
                erased.add(asked)
            if resolved not in states:
                states[resolved] = ProfileState.parse(resolved, main, transient, kinds)
        return alias, states, erased

    def _finish(self, engine: Engine, reply: Any,
                events_of: dict[str, list[dict[str, Any]]] | None = None) -> BatchResult:
        result = engine.result
        if reply is not None:
            fired, applied, replayed, cooled, dups = reply[:5]
            refused = [_text(oneid) for oneid in reply[7]] if len(reply) > 7 else []
            for oneid in refused:  # erased between the read and the apply
                result.erased += [_refusal(event) for event in (events_of or {}).get(oneid, ())]
            result.triggers = [engine.pending[int(i)] for i in sorted(int(i) for i in fired)]
            result.applied = int(applied)
            result.skipped_replayed += int(replayed)
            result.suppressed_cooldown += int(cooled)
            result.duplicates += int(dups)
            result.segments = [segment_records.from_line(line) for line in reply[5]]
        self._count(result)
        return result

    @staticmethod
    def _conflicts(reply: Any) -> list[str]:
        """Profiles whose segment ops the script refused (they changed under the evaluation)."""
        return [_text(oneid) for oneid in reply[6]] if reply is not None else []

    @staticmethod
    def _with_segments(engine: Engine, st: ProfileState, entry: dict[str, Any] | None, now_ms: int,
                       reason: str, message_id: str = "", *, timer: int | None = None
                       ) -> dict[str, Any] | None:
        """The profile's apply entry with its stream segments' ops (``profiles/segments/``); after
        events, only changes (a member's re-check stays where it was: ``Membership.entry``) and
        the segment timer. ``timer``: the partition whose segment timer ran (the sweep): the
        entry drops that timer if the evaluation sets none (the rules lost their timed segments)."""
        seg = engine.segments.entry(st, now_ms, reason=reason, message_id=message_id,
                                    stays=reason != segment_records.REASON_EVENT)
        if seg is None and timer is None:
            return entry
        if seg is None:
            seg = {"mg": st.merge_gen, "ops": []}
        if timer is not None:
            seg.setdefault("due", -1)
        if entry is None:
            entry = {"id": st.oneid, "groups": [], "fields": []}
        if timer is not None:
            entry.setdefault("pt", timer)
        entry["fields"] = [*entry["fields"], layout.MERGE_GEN, layout.PARTITION,
                           *(layout.SEGMENT + op[0] for op in seg["ops"])]
        entry["seg"] = seg
        return entry

    def _payload(self, rules: Rules, partition: int, entries: list[dict[str, Any]], now_ms: int) -> bytes:
        return orjson.dumps({"partition": partition, "now": now_ms, "profiles": entries,
                             "meta": orjson.Fragment(self._meta_json(rules))})

    # -- operations ----------------------------------------------------------------------------
    def apply_batch(self, partition: int, events: Sequence[tuple[int, dict[str, Any]]], now_ms: int) -> Steps:
        rules = self.rules()
        ids = list(dict.fromkeys(oneid for _, ev in events if (oneid := _oneid(ev))))
        engine = self.engine(rules, now_ms)
        rows = (yield ("script", "read", *ids)) if ids else []
        alias, states, erased = self._states(rules, rows)
        events_of: dict[str, list[dict[str, Any]]] = {}
        for offset, event in events:
            oneid = _oneid(event)
            if oneid is None:
                engine.result.skipped_invalid += 1
                log.warning("profile batch: event at offset %s has no oneid; skipped", offset)
                continue
            if oneid in erased:  # stamped before the person was erased: refused, reported
                engine.result.erased.append(_refusal(event))
                continue
            events_of.setdefault(alias[oneid], []).append(event)
            engine.on_event(states[alias[oneid]], partition, offset, event)
        entries = []
        for st in states.values():
            engine.finish_profile(st)
            entry = st.payload()
            if st.groups:  # events of this batch reached it (a replay alone changes nothing)
                entry = self._with_segments(engine, st, entry, now_ms, segment_records.REASON_EVENT,
                                            engine.last_message.get(st.oneid, ""))
            if entry is not None:
                entries.append(entry)
        engine.result.profiles = len(states)
        if not entries:
            return self._finish(engine, None)
        reply = yield ("script", "apply", self._payload(rules, partition, entries, now_ms))
        result = self._finish(engine, reply, events_of)
        conflicts = self._conflicts(reply)
        if conflicts:
            result.segments += yield from self.refresh_segments(
                conflicts, now_ms, segment_records.REASON_EVENT, engine.last_message)
        return result

    def close_expired(self, watermark_ms: int, partitions: Iterable[int] | None) -> Steps:
        rules = self.rules()
        parts = [str(p) for p in partitions] if partitions is not None else []
        items, rows = yield ("script", "due", str(int(watermark_ms)), str(self.due_limit), *parts)
        engine = self.engine(rules, watermark_ms)
        if not items:
            return self._finish(engine, None)
        kinds = {a.sid: (name, a.kind) for name, a in rules.aggregates.items()}
        raw = {_text(r[0]): (r[1], r[2]) for r in rows}
        timers: dict[tuple[str, int], list[tuple[str, str | None, float, str]]] = {}
        for part, member, score in items:
            letter, oneid, ref = parse_member(_text(member))
            timers.setdefault((oneid, int(_text(part))), []).append(
                (letter, ref, float(_text(score)), _text(member)))
        entries = []
        evaluated: set[str] = set()
        failed: dict[str, dict[str, float]] = {}  # due key -> {timer: retry time}
        isolated = 0
        for (oneid, part), due in timers.items():
            try:
                main, transient = raw.get(oneid, ([], []))
                st = ProfileState.parse(oneid, main, transient, kinds)
                for letter, ref, score, _ in due:
                    if letter != layout.TIMER_SEGMENTS:  # a segment timer fires nothing: it evaluates
                        engine.on_due(st, letter, ref, score, int(watermark_ms))
                entry = st.payload(partition=part, must_exist=True)
                timer = part if any(t[0] == layout.TIMER_SEGMENTS for t in due) else None
                if oneid not in evaluated or timer is not None:  # time may have changed its segments
                    entry = self._with_segments(engine, st, entry, watermark_ms, segment_records.REASON_TIME,
                                                timer=timer)
                    evaluated.add(oneid)
            except Exception as exc:  # one profile's data must not hold every timer of the partition
                _isolated("timers", oneid, exc)
                isolated += 1
                retry = watermark_ms + TIMER_RETRY_MS
                failed.setdefault(layout.due_key(self.prefix, part), {}).update({t[3]: retry for t in due})
                continue  # its fired triggers stay unconfirmed (not in the apply): nothing is sent
            if entry is not None:
                entries.append(entry)
        for key, retries in failed.items():
            yield ("zadd", key, retries, False, True)  # XX: a timer the apply removed meanwhile stays gone
        engine.result.profiles = len(timers) - isolated
        reply = yield ("script", "apply", self._payload(rules, -1, entries, watermark_ms))
        result = self._finish(engine, reply)
        conflicts = self._conflicts(reply)
        if conflicts:
            result.segments += yield from self.refresh_segments(conflicts, watermark_ms,
                                                                segment_records.REASON_TIME)
        return result

    def refresh_segments(self, oneids: Iterable[str], now_ms: int, reason: str,
                         message_ids: dict[str, str] | None = None) -> Steps:
        """Evaluate the stream segments of these profiles on a fresh read and record what changed;
        again for the ones that changed meanwhile (at most SEGMENT_ATTEMPTS reads)."""
        rules = self.rules()
        message_ids = message_ids or {}
        found: list[dict[str, Any]] = []
        pending = list(dict.fromkeys(oneids))
        for _ in range(SEGMENT_ATTEMPTS):
            if not pending or not rules.stream_segments:
                return found
            rows = yield ("script", "read", *pending)
            _, states, _ = self._states(rules, rows)
            engine = self.engine(rules, now_ms)
            entries = [e for st in states.values()
                       if (e := self._with_segments(engine, st, None, now_ms, reason,
                                                    message_ids.get(st.oneid, ""))) is not None]
            if not entries:
                return found
            reply = yield ("script", "apply", self._payload(rules, -1, entries, now_ms))
            found += [segment_records.from_line(line) for line in reply[5]]
            pending = self._conflicts(reply)
        if pending:
            log.warning("segments: %s profile(s) kept changing under evaluation; their next event or "
                        "re-check decides", len(pending))
        return found

    def sweep_segments(self, now_ms: int, limit: int) -> Steps:
        """Members of stream segments whose re-check is due (time alone may have changed them)."""
        rules = self.rules()
        names = [s.name for s in rules.stream_segments]
        if not names:
            return []
        rows, lines = yield ("script", "segdue", str(int(now_ms)), str(SEGMENT_LEASE_MS), str(limit), *names)
        found = [segment_records.from_line(line) for line in lines]
        if not rows:
            return found
        kinds = {a.sid: (name, a.kind) for name, a in rules.aggregates.items()}
        engine = self.engine(rules, now_ms)
        entries = []
        for oneid, main in rows:
            try:
                st = ProfileState.parse(_text(oneid), main, [], kinds)
                entry = self._with_segments(engine, st, None, now_ms, segment_records.REASON_TIME)
            except Exception as exc:  # one profile's data must not hold every other re-check
                _isolated("segment re-checks", _text(oneid), exc)
                later = {_text(oneid): now_ms + TIMER_RETRY_MS}
                for name in names:  # XX: only the segments it is a member of
                    yield ("zadd", layout.segment_key(self.prefix, name), later, False, True)
                continue
            if entry is not None:
                entries.append(entry)
        if entries:
            reply = yield ("script", "apply", self._payload(rules, -1, entries, now_ms))
            found += [segment_records.from_line(line) for line in reply[5]]
            conflicts = self._conflicts(reply)
            if conflicts:
                found += yield from self.refresh_segments(conflicts, now_ms, segment_records.REASON_TIME)
        return found

    def schedule_segments(self, now_ms: int, count: int) -> Steps:
        """One step of the scan giving every profile a segment timer due now, whenever the stream
        segments' definitions change (names, conditions: :attr:`Rules.segment_fingerprint`), so
        existing profiles fill a new or changed segment without another event, and rules that
        gained a timed segment time everyone; nothing once this process saw that scan finished
        (``segscan``)."""
        fingerprint = self.rules().segment_fingerprint
        if fingerprint == self._scanned:
            return 0
        if not fingerprint:  # no stream segment: the next rules with one scan again, even the same
            yield ("delete", f"{self.prefix}{layout.SEGMENT_SCAN_KEY}")
            self._scanned = fingerprint
            return 0
        added, done = yield ("script", "segscan", fingerprint, str(int(now_ms)), str(count))
        if int(done):
            self._scanned = fingerprint
        return int(added)

    def set_members(self, segment: str, changes: Sequence[tuple[str, bool]], now_ms: int,
                    reason: str) -> Steps:
        """An SQL segment's members in or out, each only if it still differs (chunks, each atomic)."""
        found: list[dict[str, Any]] = []
        for lo in range(0, len(changes), SEGMENT_CHUNK):
            chunk = orjson.dumps([[oneid, int(want)] for oneid, want in changes[lo:lo + SEGMENT_CHUNK]])
            lines = yield ("script", "segset", segment, str(int(now_ms)), reason, chunk)
            found += [segment_records.from_line(line) for line in lines]
        return found

    def merge_meta(self, now_ms: int = 0) -> str:
        """What the merge command needs of today's rules (and the time of the segment exits), as JSON."""
        rules = self.rules()
        meta = {
            "aggs": rules.aggregate_meta,
            "hl": rules.score.half_life_ms if rules.score else 0,
            "levels": [name for name, _ in rules.tier.levels] if rules.tier else [],
            "history": rules.options.trigger_history,
            "redirect_ttl": rules.options.redirect_ttl_ms,
            "now": now_ms,
        }
        return json.dumps(meta, separators=(",", ":"), allow_nan=False)

    @staticmethod
    def merge_outcome(reply: Any) -> dict[str, Any]:
        """What one merge did; ``segments``: the merged OneID's exits (``reason: merged``);
        ``refused``: the survivor or the merged OneID is erased, nothing was written."""
        lines = reply[3] if len(reply) > 3 else []
        moved = int(reply[2])
        return {"survivor": _text(reply[0]), "merged": _text(reply[1]), "fields_moved": max(moved, 0),
                "segments": [segment_records.from_line(line) for line in lines], "refused": moved < 0}

    def merge_profiles(self, survivor: str, merged: str, now_ms: int = 0) -> Steps:
        reply = yield ("script", "merge", survivor, merged, self.merge_meta(now_ms))
        return self.merge_outcome(reply)

    def delete_profile(self, oneid: str) -> Steps:
        deleted = yield ("script", "delete", oneid)
        return int(deleted)

    def erase_profiles(self, oneids: Sequence[str]) -> Steps:
        if not oneids:
            return ProfileErasure(0, 0, 0, [], [], 0)
        keys, timers, outbox, fired, visited, memberships = yield ("script", "erase", *oneids)
        return ProfileErasure(int(keys), int(timers), int(outbox), sorted({_text(k) for k in fired}),
                              sorted(_text(o) for o in visited), int(memberships))

    def get_profile(self, oneid: str, as_of_ms: int | None) -> Steps:
        profiles = yield from self.get_profiles([oneid], as_of_ms)
        return profiles[0]

    def get_profiles(self, oneids: Sequence[str], as_of_ms: int | None) -> Steps:
        """Snapshots of several profiles in one read (None for one that does not exist)."""
        if not oneids:
            return []
        rules = self.rules()
        rows = yield ("script", "read", *oneids)
        alias, states, _ = self._states(rules, rows)
        engine = Engine(rules, 0)
        out: list[dict[str, Any] | None] = []
        for oneid in oneids:
            st = states[alias[oneid]]
            if not st.exists:
                out.append(None)
                continue
            snapshot = engine.snapshot(st, as_of_ms if as_of_ms is not None else (st.last_seen or 0))
            snapshot["open_views"] = len(st.views)
            snapshot["pending_timers"] = len(st.delayed)
            snapshot["segments"] = dict(sorted(st.segments.items()))  # stream segment -> member since
            out.append(snapshot)
        return out

    def guards(self, oneids: Sequence[str]) -> Steps:
        """Per OneID: ``(offset guards, last seen)`` of the profile it names, None when it has none
        of its own (absent, or merged into another): what a seed must be computed against."""
        if not oneids:
            return []
        rows = yield ("script", "read", *oneids)
        alias, states, _ = self._states(self.rules(), rows)
        out: list[tuple[dict[str, int], int | None] | None] = []
        for oneid in oneids:
            st = states[alias[oneid]]
            out.append((dict(st.offsets), st.last_seen) if st.exists and alias[oneid] == oneid else None)
        return out

    def list_triggers(self, oneid: str, limit: int | None) -> Steps:
        resolved = oneid
        for _ in range(8):
            nxt = yield ("get", self.key(resolved, layout.REDIRECT_SUFFIX))
            if nxt is None:
                break
            resolved = _text(nxt)
        text = yield ("get", self.key(resolved, layout.HISTORY_SUFFIX))
        lines = _text(text).split("\n") if text else []
        return [records.from_history(resolved, line) for line in lines[:limit]]

    def memory_usage(self, oneid: str) -> Steps:
        """Bytes Redis reports (MEMORY USAGE, exact) for each existing key of the profile."""
        out: dict[str, int] = {}
        for key in self.profile_keys(oneid):
            used = yield ("memory_usage", key, 0)
            if used is not None:
                out[key] = int(used)
        return out


class ProfileStore:
    """Profiles, rules and triggers on a synchronous ``redis.Redis`` client."""

    def __init__(
        self,
        redis_client: Any,
        prefix: str,
        ruleset: RuleSet | Rules,
        *,
        due_limit: int = 1000,
        event_time_skew_ms: int = 300_000,
        max_traits_per_profile: int = 500,
    ) -> None:
        """``ruleset``: the rules in force, always explicit (the factory reads them from the settings;
        a silent default once made commands ignore a configured rules file).
        ``event_time_skew_ms``: event times ahead of receipt count as receipt + this for
        lateness, ordering and windows (settings.event_time_skew_s * 1000);
        ``max_traits_per_profile``: new trait keys past it are dropped and counted."""
        self.redis = redis_client
        self._core = _Core(
            prefix,
            ruleset,
            due_limit,
            event_time_skew_ms=event_time_skew_ms,
            max_traits_per_profile=max_traits_per_profile,
        )

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counters since start (for metrics)."""
        return self._core.stats

    @property
    def ruleset(self) -> RuleSet:
        return self._core.ruleset

    def profile_keys(self, oneid: str) -> list[str]:
        return self._core.profile_keys(oneid)

    def _script(self, command: str, *args: Any) -> Any:
        return script.run(self.redis, command, self._core.prefix, *args)

    def _run(self, steps: Steps) -> Any:
        try:
            request = next(steps)
            while True:
                method, *args = request
                call = self._script if method == "script" else getattr(self.redis, method)
                request = steps.send(call(*args))
        except StopIteration as done:
            return done.value

    def apply_batch(
        self, partition: int, events: Sequence[tuple[int, dict[str, Any]]], now_ms: int
    ) -> BatchResult:
        """Apply resolved events ``[(offset, event), ...]`` of one partition (2 script calls)."""
        return self._run(self._core.apply_batch(partition, events, now_ms))

    def close_expired(
        self, now_ms_watermark: int, partitions: Iterable[int] | None = None
    ) -> list[dict[str, Any]]:
        """Fire timers due at or before the watermark (dwell, delayed, inactivity); all partitions
        with timers unless ``partitions`` is given. At most ``due_limit`` per partition per call."""
        return self.close_expired_result(now_ms_watermark, partitions).triggers

    def close_expired_result(
        self, now_ms_watermark: int, partitions: Iterable[int] | None = None
    ) -> BatchResult:
        return self._run(self._core.close_expired(now_ms_watermark, partitions))

    def merge_profiles(self, survivor: str, merged: str, now_ms: int = 0) -> dict[str, Any]:
        """Fold ``merged`` into ``survivor`` atomically, delete its keys, redirect its later events;
        ``merged`` leaves its segments (records stamped ``now_ms``)."""
        return self._run(self._core.merge_profiles(survivor, merged, now_ms))

    def merge_many(self, pairs: Sequence[tuple[str, str]], now_ms: int = 0) -> list[dict[str, Any]]:
        """:meth:`merge_profiles` for each (survivor, merged) in order, in one round trip.

        Each merge is still its own atomic script run; merges are idempotent, so a batch that
        fails part-way is simply run again (the merges stage retries it whole). The survivors'
        segments are not evaluated here: :meth:`refresh_segments` after the batch.
        """
        if not pairs:
            return []
        meta = self._core.merge_meta(now_ms)
        calls = [("merge", survivor, merged, meta) for survivor, merged in pairs]
        replies = script.run_many(self.redis, self._core.prefix, calls)
        return [self._core.merge_outcome(reply) for reply in replies]

    def refresh_segments(self, oneids: Iterable[str], now_ms: int, reason: str) -> list[dict[str, Any]]:
        """Evaluate the stream segments of these profiles now (after a merge: the survivors);
        the entries and exits recorded (in the segments outbox until acknowledged)."""
        return self._run(self._core.refresh_segments(oneids, now_ms, reason))

    def sweep_segments(self, now_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        """Re-check stream segment members whose time came (at most ``limit`` per segment)."""
        return self._run(self._core.sweep_segments(now_ms, limit))

    def schedule_segments(self, now_ms: int, count: int = SEGMENT_SCAN_COUNT) -> int:
        """One step of the scan that gives profiles without one a segment timer (due now, so the
        sweep evaluates them); the timers added. Free once the scan is done for these rules."""
        return self._run(self._core.schedule_segments(now_ms, count))

    def set_members(self, segment: str, changes: Sequence[tuple[str, bool]], now_ms: int,
                    reason: str = segment_records.REASON_REFRESH) -> list[dict[str, Any]]:
        """Put OneIDs in (True) or out of an SQL segment; the changes recorded."""
        return self._run(self._core.set_members(segment, changes, now_ms, reason))

    def segment_count(self, segment: str) -> int:
        """Members of a segment now (its index's ZCARD: constant time)."""
        return int(self.redis.zcard(layout.segment_key(self._core.prefix, segment)))

    def segment_members(self, segment: str, chunk: int = 1000) -> Iterator[list[tuple[str, int]]]:
        """A segment's members in chunks of (OneID, score): a stream member's next re-check,
        an SQL member's entry time (ms). A member may appear twice if the index changes meanwhile."""
        key = layout.segment_key(self._core.prefix, segment)
        cursor = 0
        while True:
            cursor, items = self.redis.zscan(key, cursor, count=chunk)
            if items:
                yield [(_text(oneid), int(score)) for oneid, score in items]
            if not cursor:
                return

    def refresh_lock(self, ttl_s: float) -> Any:
        """The SQL segment refresh lock (redis-py's token lock: ``acquire(blocking=False)``,
        ``extend(ttl_s, replace_ttl=True)``, ``release()``); it expires if its holder dies."""
        return self.redis.lock(f"{self._core.prefix}{layout.SEGMENT_REFRESH_LOCK_KEY}", timeout=ttl_s,
                               blocking=False)

    def segment_versions(self) -> dict[str, int]:
        """Every segment that ever had a member, with its version (entries and exits so far)."""
        raw = self.redis.hgetall(f"{self._core.prefix}{layout.SEGMENTS_KEY}")
        return {_text(k): int(v) for k, v in raw.items()}

    def delete_profile(self, oneid: str) -> int:
        """Remove every key of the profile (and its timers, redirects); returns keys deleted."""
        return self._run(self._core.delete_profile(oneid))

    def erase_profiles(self, oneids: Sequence[str]) -> ProfileErasure:
        """An erasure's profile half: every key of these OneIDs (and of OneIDs merged into them or
        that they redirect to), their timers in every partition and their trigger-outbox entries,
        in one atomic script run. Tombstone the OneIDs first: apply and merge refuse them."""
        return self._run(self._core.erase_profiles(list(oneids)))

    def get_profile(self, oneid: str, as_of_ms: int | None = None) -> dict[str, Any] | None:
        """Traits, aggregates, tags, score, tier and stream segments as of ``as_of_ms`` (default:
        last seen)."""
        return self._run(self._core.get_profile(oneid, as_of_ms))

    def get_profiles(self, oneids: Sequence[str], as_of_ms: int | None = None) -> list[dict[str, Any] | None]:
        """:meth:`get_profile` of several OneIDs in one read."""
        return self._run(self._core.get_profiles(oneids, as_of_ms))

    def guards(self, oneids: Sequence[str]) -> list[tuple[dict[str, int], int | None] | None]:
        """Offset guards and last seen of each profile (None: absent or merged away), in one read."""
        return self._run(self._core.guards(oneids))

    def seed(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        """Seed buckets or tags of profiles from history (``profiles/lua/seed.lua``), one atomic
        run each, in one round trip; each one's outcome: seeded, same, changed or missing."""
        if not payloads:
            return []
        calls = [("seed", orjson.dumps(p)) for p in payloads]
        return [_text(r) for r in script.run_many(self.redis, self._core.prefix, calls)]

    def list_triggers(self, oneid: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Triggers fired for the profile, newest first (at most options.trigger_history)."""
        return self._run(self._core.list_triggers(oneid, limit))

    def memory_usage(self, oneid: str) -> dict[str, int]:
        return self._run(self._core.memory_usage(oneid))


def _isolated(what: str, oneid: str, exc: Exception) -> None:
    """A profile set aside by a sweep: counted as a processing error, logged by OneID (a
    pseudonym: no identifier), retried after TIMER_RETRY_MS."""
    metrics.PROCESSING_ERRORS.labels("profile", type(exc).__name__).inc()
    log.error("%s of %s failed, set aside for %d s: %s: %s", what, oneid, TIMER_RETRY_MS // 1000,
              type(exc).__name__, exc)
