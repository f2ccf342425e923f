"""One erasure service for the CLI and the API: a person leaves every store, resumably.

Steps, in order, each idempotent; a step's counts are written to the erasure record (Redis,
``identity/layout.py`` K_ERASURE) once it is done, so a crash or a retry resumes with the first
unfinished step and reports what the first run removed:

1. ``graph``: one atomic script run tombstones the survivor and every alias and removes the
   identity (index, edges, aliases, merge-outbox entries); the identifiers are suppressed by
   hash for events received until erasure + ``suppress_ms``. The tombstone precedes every other
   store: from then on the profile and merge scripts refuse the OneIDs, the webhook sink does not
   deliver their triggers and the lake sink leaves their rows out of every roll.
2. ``profiles``: the state of the survivor and every alias (and OneIDs found only there, which
   are tombstoned first), their timers, trigger- and segment-outbox entries and segment
   memberships (each ends with an exit record, so audiences downstream drop the person).
3. ``webhooks``: the done marks of the triggers the person's history listed.
4. ``deadletters``: letters carrying the person are marked: never replayed, never listed
   (Kafka keeps the bytes until the topic's retention; ``streams/erased_letters.py``).
5. ``lake``: their rows leave every Parquet file, rewritten atomically under the same name
   (``connectors/lake/erase.py``).

Then an audit entry (counts and OneIDs, no identifier, no hash) and the record drops the
identifiers' hashes. A step that fails (Kafka down, the lake locked) is left pending: the answer
says so (the API's 202) and the next call resumes it. Two calls at once: the second answers the
report as it stands (pending) instead of racing the first.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from connectors.webhook.done import forget_deliveries
from identity.exceptions import ProfileNotFoundError
from identity.graph import IdentityGraph
from profiles.store import ProfileStore
from touchstream import metrics
from touchstream.errors import TouchstreamError

log = logging.getLogger(__name__)

STEPS = ("graph", "profiles", "webhooks", "deadletters", "lake")
#: Another call of the same erasure is running: held this long at most (a crashed holder's lock expires).
LOCK_MS = 10 * 60 * 1000

#: A step that reaches outside Redis: given the person's OneIDs and identifier hashes, its counts.
Step = Callable[[frozenset[str], frozenset[str]], dict[str, Any]]


class NothingToErase(TouchstreamError):
    """No profile, no state and no erasure under this OneID."""


@dataclass
class ErasureReport:
    """What an erasure removed where (counts only), and which steps are still pending."""

    oneid: str
    requested: str
    erased_at: int
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not self.pending

    def as_dict(self) -> dict[str, Any]:
        return {"oneid": self.oneid, "requested": self.requested, "erased_at": self.erased_at,
                "status": "finished" if self.finished else "pending", "pending": self.pending,
                "steps": self.steps}


class ErasureService:
    """Erase people from the graph, profile state, webhook marks, dead letters and the lake.

    ``dead_letters`` and ``lake`` are the steps outside Redis (None: that store is not used by
    this deployment, recorded as skipped); ``suppress_ms`` is the suppression window.
    """

    def __init__(self, graph: IdentityGraph, store: ProfileStore, client: redis.Redis, prefix: str, *,
                 suppress_ms: int, dead_letters: Step | None = None, lake: Step | None = None) -> None:
        self.graph = graph
        self.store = store
        self.redis = client
        self.prefix = prefix
        self.suppress_ms = suppress_ms
        self._outside: dict[str, Step | None] = {"deadletters": dead_letters, "lake": lake}

    def erase(self, oneid: str, actor: str) -> ErasureReport:
        """Erase the person behind ``oneid`` (any of their OneIDs), or resume their erasure;
        :class:`NothingToErase` when there never was anyone under it."""
        survivor = self._begin(oneid, actor)
        lock = f"{self.prefix}erasure:lock:{survivor}"
        if not self.redis.set(lock, actor, nx=True, px=LOCK_MS):
            return self._report(survivor, busy=True)
        try:
            self._run(survivor, actor)
        finally:
            self.redis.delete(lock)
        return self._report(survivor)

    def report(self, oneid: str) -> ErasureReport | None:
        """The erasure of ``oneid`` as it stands, or None when it was never erased."""
        stone = self.graph.tombstoned(oneid)
        return None if stone is None else self._report(stone[1])

    # -- steps ---------------------------------------------------------------------------------

    def _begin(self, oneid: str, actor: str) -> str:
        """The survivor whose erasure to run: an existing one, or a new one whose tombstones
        are written now (with the graph step, or alone for state without identity)."""
        stone = self.graph.tombstoned(oneid)
        if stone is not None:
            return stone[1]
        started = int(time.time() * 1000)
        try:
            erased = self.graph.erase(oneid, actor, suppress_ms=self.suppress_ms)
            survivor = erased.oneid
        except ProfileNotFoundError:
            state = self.store.get_profile(oneid)
            if state is None:
                raise NothingToErase(f"no profile {oneid}") from None
            survivor = str(state.get("oneid") or oneid)
            self.graph.tombstone({oneid, survivor}, survivor)
            self.graph.record_erasure(survivor, aliases=[], hashes=[],
                                      step_graph={"identifiers": 0, "aliases": 0, "merge_outbox": 0})
        self.graph.record_erasure(survivor, requested=oneid, actor=actor, started=started)
        return survivor

    def _run(self, survivor: str, actor: str) -> None:
        record = self.graph.erasure_record(survivor)
        if "finished" in record:
            return
        done = record.get("steps", {})
        aliases = set(record.get("aliases", []))
        hashes = frozenset(record.get("hashes", []))
        if "graph" not in done:  # tombstoned alone before a crash: the graph may still hold it
            try:
                self.graph.erase(survivor, actor, suppress_ms=self.suppress_ms)
            except ProfileNotFoundError:
                self.graph.record_erasure(survivor, step_graph={"identifiers": 0, "aliases": 0,
                                                                "merge_outbox": 0})
            record = self.graph.erasure_record(survivor)
            aliases, hashes = set(record.get("aliases", [])), frozenset(record.get("hashes", []))
        if "profiles" not in done:
            aliases |= self._profiles(survivor, aliases)
        oneids = frozenset({survivor, *aliases})
        pending: list[str] = []
        for step in ("webhooks", "deadletters", "lake"):
            if step in done:
                continue
            try:
                counts = self._outside_step(step, survivor, oneids, hashes)
            except Exception as exc:  # any store may be down: the step stays pending
                log.warning("erasure of %s: step %s failed, left pending (%s: %s)", survivor, step,
                            type(exc).__name__, exc)
                pending.append(step)
                continue
            self.graph.record_erasure(survivor, **{f"step_{step}": counts})
        if pending:
            metrics.ERASURES.labels("pending").inc()
            return
        self._finish(survivor, actor)

    def _profiles(self, survivor: str, aliases: set[str]) -> set[str]:
        """Erase profile state; OneIDs found only there (merged in the store) are tombstoned and
        erased again, so nothing stamped with them is applied in between. The aliases found."""
        erased = self.store.erase_profiles([survivor, *sorted(aliases)])
        extra = set(erased.oneids) - aliases - {survivor}
        keys, timers, outbox, segments = erased.keys, erased.timers, erased.outbox, erased.memberships
        if extra:
            self.graph.tombstone(extra, survivor)
            again = self.store.erase_profiles(sorted(extra))
            keys, timers, outbox = keys + again.keys, timers + again.timers, outbox + again.outbox
            segments += again.memberships
        self.graph.record_erasure(survivor, aliases=aliases | extra, fired=json.dumps(erased.fired_keys),
                                  step_profiles={"keys": keys, "timers": timers, "outbox": outbox,
                                                 "segments": segments, "aliases_found": len(extra)})
        return extra

    def _outside_step(self, step: str, survivor: str, oneids: frozenset[str],
                      hashes: frozenset[str]) -> dict[str, Any]:
        if step == "webhooks":
            fired = json.loads(self.graph.erasure_record(survivor).get("fired") or "[]")
            return {"done_marks": forget_deliveries(self.redis, self.prefix, fired)}
        run = self._outside[step]
        if run is None:
            return {"skipped": "not configured"}
        return run(oneids, hashes)

    def _finish(self, survivor: str, actor: str) -> None:
        record = self.graph.erasure_record(survivor)
        steps = record.get("steps", {})
        counts = {f"{step}.{name}": value for step in STEPS for name, value in steps.get(step, {}).items()
                  if isinstance(value, int)}
        self.graph.audit("erase", actor, oneid=survivor, requested=record.get("requested", survivor),
                         aliases=len(record.get("aliases", [])), **counts)
        self.graph.forget_erasure_hashes(survivor)
        self.graph.record_erasure(survivor, finished=int(time.time() * 1000))
        metrics.ERASURES.labels("finished").inc()
        log.info("erasure of %s finished", survivor)

    def _report(self, survivor: str, *, busy: bool = False) -> ErasureReport:
        record = self.graph.erasure_record(survivor)
        stone = self.graph.tombstoned(survivor)
        steps = record.get("steps", {})
        report = ErasureReport(oneid=survivor, requested=record.get("requested", survivor),
                               erased_at=stone[0] if stone else 0,
                               steps={step: steps[step] for step in STEPS if step in steps})
        if "finished" not in record:  # a step left, or (busy) another call still finishing
            report.pending = [step for step in STEPS if step not in steps] or (["audit"] if busy else [])
        return report
