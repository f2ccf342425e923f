"""``make hotspots``: where one worker spends its time, sampled by py-spy on the real stack.

N synthetic events are pre-loaded on fresh topics, one worker drains them while py-spy samples
it (all threads, native frames off), and the top frames are printed by own time and by
inclusive time. The raw samples stay in ``.local/profile-worker.txt`` (py-spy's collapsed
format: open it with any flame-graph viewer). Samples of a thread blocked on a Redis or Kafka
socket count too, so this is wall time per thread, summed over the three stage loops.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

from bench.pipeline import committed_all, forget, produce, start_worker, synthetic_events
from streams.topics import Topics, create_topics
from touchstream.settings import Settings


def summarize(collapsed: Path, top: int = 25) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, frames by own samples, frames by inclusive samples) of a py-spy raw file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    return total, own.most_common(top), inclusive.most_common(top)


def run(settings: Settings, events: int, log_dir: Path, rate_hz: int = 200) -> Path:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    run_id = uuid.uuid4().hex[:6]
    own = replace(settings, topic_prefix=f"prof-{run_id}", app_id=f"prof-{run_id}",
                  redis_prefix=f"prof:{run_id}:")
    topics = Topics.of(own)
    create_topics(own)
    produce(own, topics.raw, synthetic_events(events))
    out = log_dir / "profile-worker.txt"
    worker = start_worker(own, log_dir / "profile-worker.log")
    sampler = subprocess.Popen([spy, "record", "--pid", str(worker.pid), "--format", "raw", "--output",
                                str(out), "--rate", str(rate_hz), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        while not committed_all(own, [topics.raw, topics.resolved]):
            time.sleep(0.25)
        seconds = time.monotonic() - started
    finally:
        worker.terminate()  # py-spy writes its file when the process it samples ends
        worker.wait(60)
        sampler.wait(60)
        forget(own)
    total, by_own, by_inclusive = summarize(out)
    print(f"{events:,} events in {seconds:.1f} s ({events / seconds:,.0f} events/s); {total:,} samples")
    for title, rows in (("own time", by_own), ("inclusive time", by_inclusive)):
        print(f"--- top frames by {title}")
        for frame, samples in rows:
            print(f"{samples / max(1, total):6.1%}  {frame}")
    return out
