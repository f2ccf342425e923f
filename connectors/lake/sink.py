"""The lake sink: resolved events, merges, rejections and triggers to Hive-partitioned Parquet.

A :class:`~streams.sinks.Sink` on the shared checkpointed loop: ``flush(topic, partition)`` makes
the batch's rows durable as a spool segment (``spool.py``) before the loop commits the offsets,
and rolls the partition into Parquet files once its segments reach ``roll_bytes``; a timer thread
rolls partitions whose oldest segment is ``roll_s`` old, and a clean stop rolls everything.
Records below a partition's ``next_offset`` are already in a segment or file (a replay after a
crash) and are skipped: exactly once per offset.

One sink process per lake: it holds an exclusive lock on ``<spool>/.lock``. The spool is a local
folder (``<lake>/_spool``, or ``TOUCHSTREAM_LAKE_SPOOL_PATH`` for a lake at a URL: see
``location.py``); a spool apart from its lake records the lake it belongs to (``.lake``) and refuses
to feed another, since its segments and offsets are that lake's.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from connectors.lake import files, layout
from connectors.lake.config import LakeConfig
from connectors.lake.exceptions import LakeError
from connectors.lake.location import LakeLocation
from connectors.lake.rows import OFFSET, TABLES, RowCodec
from connectors.lake.spool import ROLL_TMP, PartitionSpool, Written
from schemas.codec import SchemaRegistry, default_registry
from streams.deadletters import DeadLetter
from streams.ops_http import Check, serve_ops
from streams.records import Record
from streams.sink_loop import SinkOptions, run_sink
from touchstream import metrics

log = logging.getLogger(__name__)

STAGE = "lake"
ROLL_THREADS = 4
OWNER = ".lake"  # in the spool: which lake its segments belong to


@dataclass
class LakeStats:
    """What one run of the sink did."""

    records: int = 0
    rows: int = 0  # rows written to Parquet files by this run
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    dead_letters: int = 0
    first_at: float | None = None
    last_at: float | None = None
    close_s: float = 0.0  # the final rolls of a clean stop
    first_cpu: float = 0.0  # process CPU seconds when the first record came
    last_cpu: float = 0.0
    close_cpu_s: float = 0.0

    @property
    def cpu_s(self) -> float:
        """Process CPU (all threads) from the first record to the last batch, plus the final rolls."""
        return self.last_cpu - self.first_cpu + self.close_cpu_s

    @property
    def active_s(self) -> float:
        return 0.0 if self.first_at is None or self.last_at is None else self.last_at - self.first_at

    def render(self) -> str:
        rate = self.records / self.active_s if self.active_s else 0.0
        return (f"{self.records} record(s) taken, {self.skipped} already in the lake, "
                f"{self.dead_letters} dead-lettered; {self.rows} row(s) in {self.files} file(s), "
                f"{self.bytes} bytes; {self.active_s:.2f}s busy ({rate:.0f} records/s)")


def lake_topics(prefix: str) -> tuple[str, ...]:
    """The topics the lake writes (``rows.TABLES``), one table each."""
    return tuple(f"{prefix}.{spec.topic_suffix}" for spec in TABLES)


class LakeSink:
    """Buffer records per partition; ``flush`` writes a durable segment and rolls when big enough."""

    def __init__(self, config: LakeConfig, registry: SchemaRegistry | None = None,
                 keep: Callable[[str, pa.Table], pa.Table] | None = None,
                 lake: LakeLocation | None = None) -> None:
        """``keep``: every roll's rows pass through it (``erase.RollFilter``: erased people out);
        ``lake``: the lake already opened (default: ``config.path`` opened)."""
        self.config = config
        self._keep = keep
        self.lake = lake or LakeLocation.open(config.path)
        self.spool_root = config.spool_root()
        self.stats = LakeStats()
        registry = registry or default_registry()
        self._codecs = {config.topic(spec.topic_suffix): RowCodec(registry, spec) for spec in TABLES}
        self._pending: dict[tuple[str, int], list[Record]] = defaultdict(list)
        self._spools: dict[tuple[str, int], PartitionSpool] = {}
        self._lake_ends: dict[str, dict[int, int]] = {}  # per topic, listed once at open
        self._lock = threading.Lock()  # the flushing loop and the roll timer
        self._lock_file: IO[str] | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------------

    def open(self) -> None:
        """Take the lake's lock, clean up after a crash, recover every spooled partition."""
        spool_root = self.spool_root
        spool_root.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(spool_root / ".lock", "w")  # noqa: SIM115 - held for the sink's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LakeError(f"another lake sink holds {spool_root / '.lock'}") from None
        if self.config.spool_path is not None:  # a spool apart from the lake could be another's
            self._claim_spool()
        for spec in TABLES:
            for path in self.lake.temporaries(spec.name, ROLL_TMP):
                self.lake.delete(path)
            topic = self.config.topic(spec.topic_suffix)
            self._lake_ends[topic] = self.lake.next_offsets(spec.name, topic)
        for folder in sorted(spool_root.iterdir()):
            parsed = layout.parse_spool_dir_name(folder.name)
            if folder.is_dir() and parsed is not None and parsed[0] in self._codecs:
                self._spool(*parsed)
        self._timer = threading.Thread(target=self._roll_aged_forever, name="lake-roll", daemon=True)
        self._timer.start()

    def _claim_spool(self) -> None:
        """Record which lake the spool feeds; refuse a spool that feeds another one."""
        owner = self.spool_root / OWNER
        mine = f"{self.lake.fs.type_name}:{self.lake.base}"
        if owner.exists() and owner.read_text().strip() != mine:
            raise LakeError(f"the spool {self.spool_root} holds segments of another lake "
                            f"({owner.read_text().strip()}); give this lake a spool of its own "
                            "(TOUCHSTREAM_LAKE_SPOOL_PATH)")
        if not owner.exists():
            tmp = files.temporary(owner, "owner")
            tmp.write_text(mine + "\n")
            files.fsync(tmp)
            files.publish(tmp, owner)

    def close(self) -> None:
        """Stop the roll timer and roll every partition (a clean stop leaves an empty spool)."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        started, cpu = time.monotonic(), time.process_time()
        with self._lock:
            self._roll_all([spool for spool in self._spools.values() if spool.segments])
        self.stats.close_s = time.monotonic() - started
        self.stats.close_cpu_s = time.process_time() - cpu
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- the Sink contract -----------------------------------------------------------------------

    def add(self, record: Record) -> None:
        self._pending[(record.topic, record.partition)].append(record)

    def drop(self) -> None:
        self._pending.clear()

    def flush(self, topic: str, partition: int) -> Sequence[DeadLetter]:
        records = self._pending.pop((topic, partition), [])
        if not records:
            return []
        now = time.monotonic()
        stats = self.stats
        if stats.first_at is None:
            stats.first_at, stats.first_cpu = now, time.process_time()
        codec = self._codecs.get(topic)
        if codec is None:
            error = f"the lake has no table for {topic}"
            return [DeadLetter(STAGE, "unexpected_topic", error, r) for r in records]
        rows, failed = codec.rows(records)
        # a replayed bad record is dead-lettered again, never lost
        letters = [DeadLetter(STAGE, exc.reason, str(exc), record) for record, exc in failed]
        with self._lock:
            spool = self._spool(topic, partition)
            if rows.num_rows and records[0].offset < spool.next_offset:  # a replay: keep what is new
                rows = rows.filter(pc.greater_equal(rows.column(OFFSET), spool.next_offset))
            skipped = len(records) - len(failed) - rows.num_rows
            spool.append(rows)
            if spool.bytes >= self.config.roll_bytes:
                self._roll_or_wait(spool)
            metrics.LAKE_SPOOLED_ROWS.labels(codec.spec.name).set(self._spooled(codec.spec.name))
        if skipped:
            metrics.LAKE_SKIPPED.labels(codec.spec.name).inc(skipped)
        stats.records += len(records)
        stats.skipped += skipped
        stats.dead_letters += len(letters)
        stats.last_at, stats.last_cpu = time.monotonic(), time.process_time()
        return letters

    # -- internals -------------------------------------------------------------------------------

    def _spool(self, topic: str, partition: int) -> PartitionSpool:
        spool = self._spools.get((topic, partition))
        if spool is None:
            spool = PartitionSpool(self.lake, self.spool_root, self._codecs[topic], topic, partition,
                                   self._keep)
            self._count(spool, spool.recover(self._lake_ends.get(topic)))
            self._spools[(topic, partition)] = spool
        return spool

    def _try_roll(self, spool: PartitionSpool) -> Written | None:
        """Roll one partition; None when the lake cannot be written (a full disk, an object store
        out of reach): logged and counted, the rows stay durable in the spool and the next flush or
        the timer tries again. Raised from ``flush``, the error would have the loop bisect the
        batch and dead-letter records already spooled."""
        try:
            return spool.roll()
        except (OSError, LakeError) as exc:
            metrics.LAKE_ROLL_FAILURES.labels(spool.codec.spec.name).inc()
            log.warning("lake: rolling %s/%s into %s failed, the rows wait in the spool: %s",
                        spool.topic, spool.partition, self.lake, exc)
            return None

    def _roll_or_wait(self, spool: PartitionSpool) -> None:
        written = self._try_roll(spool)
        if written is not None:
            self._count(spool, written)

    def _spooled(self, table: str) -> int:
        return sum(s.rows for s in self._spools.values() if s.codec.spec.name == table)

    def _count(self, spool: PartitionSpool, written: Written) -> None:
        if not written.files:
            return
        table = spool.codec.spec.name
        metrics.LAKE_ROWS.labels(table).inc(written.rows)
        metrics.LAKE_BYTES.labels(table).inc(written.bytes)
        metrics.LAKE_FILES.labels(table).inc(written.files)
        metrics.LAKE_SPOOLED_ROWS.labels(table).set(self._spooled(table))
        self.stats.rows += written.rows
        self.stats.files += written.files
        self.stats.bytes += written.bytes
        log.debug("lake: rolled %s rows of %s/%s into %s file(s)", written.rows, spool.topic,
                  spool.partition, written.files)

    def _roll_all(self, spools: list[PartitionSpool]) -> None:
        """Roll partitions side by side: a roll waits on fsyncs, uploads and Parquet encoding, all
        outside the GIL (the final rolls of a 6-partition bench took 4x their CPU in wall time)."""
        if len(spools) <= 1:
            for spool in spools:
                self._roll_or_wait(spool)
            return
        with ThreadPoolExecutor(max_workers=ROLL_THREADS, thread_name_prefix="lake-roll") as pool:
            for spool, written in zip(spools, pool.map(self._try_roll, spools), strict=True):
                if written is not None:
                    self._count(spool, written)

    def roll_aged(self, now: float | None = None) -> None:
        """Roll every partition whose oldest segment is ``roll_s`` old."""
        now = time.time() if now is None else now
        with self._lock:
            self._roll_all([spool for spool in self._spools.values()
                            if spool.segments and spool.age_s(now) >= self.config.roll_s])

    def _roll_aged_forever(self) -> None:
        every = min(1.0, self.config.roll_s / 4)
        while not self._stop.wait(every):
            try:
                self.roll_aged()
            except Exception:  # segments stay durable; try again next time
                log.exception("lake: rolling aged segments failed; trying again")


def run_lake_sink(config: LakeConfig, *, stop_after_idle_s: float | None = None,
                  readiness: Mapping[str, Check] | None = None,
                  keep: Callable[[str, pa.Table], pa.Table] | None = None) -> LakeStats:
    """Write every lake topic to the lake until SIGTERM/SIGINT (or idle); blocking, main thread.
    The ops port serves ``/metrics``, ``/healthz`` and ``/readyz`` (by ``readiness``)."""
    server = None
    if config.metrics_port:
        try:
            server = serve_ops(config.metrics_host, config.metrics_port, readiness or {})
        except OSError as exc:
            raise LakeError(f"lake metrics port {config.metrics_host}:{config.metrics_port} cannot be "
                            f"bound ({exc.strerror}); set TOUCHSTREAM_LAKE_METRICS_PORT") from None
    sink = LakeSink(config, keep=keep)
    sink.open()
    topics = lake_topics(config.topic_prefix)
    try:
        log.info("lake sink: %s -> %s (group %s)", ", ".join(topics), sink.lake, config.group)
        run_sink(sink, SinkOptions(
            name=STAGE, broker=config.broker, group=config.group, topics=topics,
            deadletter_topic=config.deadletter_topic, batch_size=config.batch_size, within_s=config.within_s,
            stop_after_idle_s=stop_after_idle_s))
    finally:
        sink.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    log.info("lake sink: %s", sink.stats.render())
    return sink.stats
