"""Erasure on the real stack: a person whose events are still in flight and whose merge is pending
is erased by the CLI; afterwards no Redis key, lake row, outbox entry, timer or dead letter brings
them back, and their identifiers come back as a new person only after the suppression window.
The API route answers the same report on every retry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from apps import factory
from connectors.ingest import partition_key
from connectors.lake import layout, locks
from connectors.lake.query import connect, run_query
from schemas.codec import default_registry
from schemas.testing import event_record
from streams.deadletters import DeadLetter, encode_dead_letters
from streams.erased_letters import erased_key
from streams.records import Record
from streams.topics import Topics
from tests.integration.conftest import (
    TopicReader,
    WorkerProcess,
    api,
    cli,
    free_port,
    wait_caught_up,
)
from tests.integration.lake_helpers import LakeProcess, lake_settings, produce, wait_committed
from touchstream import tombstones
from touchstream.settings import Settings

REGISTRY = default_registry()
WINDOW_S = 45


def now_ms() -> int:
    return int(time.time() * 1000)


def raw(mid: str, *ids: tuple[str, str], event: str = "Seen", received: int | None = None,
        **fields: Any) -> tuple[bytes, bytes]:
    at = now_ms()
    record = event_record("track", at, message_id=mid, event=event, received_at=received or at,
                          identifiers=[{"type": t, "value": v} for t, v in ids], **fields)
    return partition_key(record), REGISTRY.encode("event", record)


def stamped(mid: str, oneid: str, event: str = "Seen") -> tuple[bytes, bytes]:
    record = event_record("track", now_ms(), message_id=mid, event=event, oneid=oneid,
                          identifiers=[{"type": "anonymous_id", "value": f"x-{mid}"}])
    return oneid.encode(), REGISTRY.encode("event", record)


def erase(settings: Settings, oneid: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "apps.cli", "identity", "delete", oneid, "--actor", "dpo"],
                            env=settings.child_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def naming(client: redis.Redis, settings: Settings, oneids: set[str], values: set[str]) -> list[Any]:
    """Every key, hash field or value, set or zset member under the prefix naming a OneID or
    holding an identifier value - except the tombstones and erasure records, which are the
    erasure's own (OneIDs and counts)."""
    keep = (tombstones.key(settings.redis_prefix), f"{settings.redis_prefix}{{oneid}}:x:")
    needles = [n.encode() for n in oneids | values]
    found: list[Any] = []
    for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
        if key.decode().startswith(keep):
            continue
        kind = client.type(key)
        parts: list[bytes] = [key]
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"string":
            parts.append(client.get(key) or b"")
        found += [(key, p) for p in parts if any(n in p for n in needles)]
    return found


def lake_rows_naming(root: Path, oneids: set[str], hashes: set[str]) -> dict[str, int]:
    con = connect(root)
    ids = ", ".join(f"'{o}'" for o in sorted(oneids))
    hs = ", ".join(f"'{h}'" for h in sorted(hashes))
    counts = {
        "events": f"SELECT count(*) FROM events_raw WHERE oneid IN ({ids})",
        "triggers": f"SELECT count(*) FROM triggers WHERE oneid IN ({ids})",
        "merges": f"SELECT count(*) FROM merges WHERE survivor IN ({ids}) OR merged IN ({ids})",
        "rejections": f"SELECT count(*) FROM rejections WHERE oneid IN ({ids}) "
                      f"OR type || ':' || value_hash IN ({hs})",
    }
    return {table: int(run_query(con, sql).column(0)[0].as_py()) for table, sql in counts.items()}


@pytest.fixture()
def own(settings: Settings, tmp_path: Path) -> Settings:
    lake = lake_settings(settings, tmp_path / "lake", own_topics=True, lake_roll_s=1)
    return replace(lake, redis_prefix=f"{settings.redis_prefix}er{uuid.uuid4().hex[:6]}:",
                   erasure_suppression_s=WINDOW_S)


def test_erasing_a_person_in_flight_leaves_nothing_that_brings_them_back(own: Settings,
                                                                         tmp_path: Path) -> None:
    topics, client = Topics.of(own), redis.Redis.from_url(own.redis_url)
    m = uuid.uuid4().hex[:8]
    user, email, anon, anon2 = f"u-{m}", f"ann-{m}@example.cn", f"a-{m}", f"b-{m}"
    values = {user, email, anon, anon2}
    worker = WorkerProcess(own, tmp_path / "worker.log", free_port()).start()
    sink = LakeProcess(own, tmp_path / "lake.log").start()
    resolved = TopicReader(own, topics.resolved, "event")
    try:
        # 1. the person: a login with email, a pricing view (dwell timer), an order (delayed
        # triggers), a demo request (fired); an anonymous visitor who is someone else so far
        produce(own, topics.raw, [
            raw(f"{m}-0", ("user_id", user), ("email", email), user_id=user),
            raw(f"{m}-1", ("user_id", user), event="Demo Requested", user_id=user),
            raw(f"{m}-2", ("user_id", user), event="Order Completed", user_id=user,
                properties={"revenue": 10, "order_id": "o-1"}),
            raw(f"{m}-3", ("anonymous_id", anon2)),
        ])
        found = {r["message_id"]: r for r in resolved.until(
            lambda rs: {f"{m}-{i}" for i in range(4)} <= {r["message_id"] for r in rs}, 60)}
        ann, bob = found[f"{m}-0"]["oneid"], found[f"{m}-3"]["oneid"]
        visitor = bob  # the profile without a demo request: its trigger has no cooldown to wait out
        wait_caught_up(own, topics.resolved)
        wait_committed(own, f"{own.app_id}-lake")
        deadline = time.monotonic() + 60  # one roll (1 s): the person's rows are in Parquet files
        while lake_rows_naming(own_lake(own), {ann}, set())["events"] < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert lake_rows_naming(own_lake(own), {ann}, set())["events"] == 3
        worker.stop()

        # 2. in flight when the erasure comes: raw events carrying their identifiers, events
        # already stamped with their OneIDs, a merge done in the graph whose record is on Kafka
        # but neither folded nor acknowledged, a confirmed trigger Kafka never got, a dead letter
        graph = factory.identity_graph(own, client)
        store = factory.profile_store(own, client)
        merge = graph.resolve_batch([{"message_id": f"{m}-4", "timestamp": now_ms(), "identifiers": [
            {"type": "email", "value": email}, {"type": "anonymous_id", "value": anon2}]}])
        [record] = merge.merges
        assert {record["survivor"], record["merged"]} == {ann, bob}
        ann, bob = record["survivor"], record["merged"]
        produce(own, topics.merges, [(ann.encode(), REGISTRY.encode("identity_merge", record))])
        pending = store.apply_batch(0, [(10**9, json.loads(json.dumps(event_record(
            "track", now_ms(), message_id=f"{m}-5", event="Demo Requested", oneid=visitor))))], now_ms())
        assert pending.triggers  # in the trigger outbox, never produced: what a crash leaves
        received = now_ms()
        produce(own, topics.raw, [raw(f"{m}-6", ("anonymous_id", anon), ("user_id", user),
                                      received=received)])
        produce(own, topics.resolved, [stamped(f"{m}-7", ann), stamped(f"{m}-8", bob)])
        letter = DeadLetter("profile", "processing_error", "boom",
                            Record(0, 3, ann.encode(), stamped(f"{m}-9", ann)[1], topics.resolved))
        produce(own, topics.deadletter, encode_dead_letters([letter]))
        fired_key = json.loads(client.get(f"{own.redis_prefix}p:{{{ann}}}:h").split(b"\n")[0])
        done_mark = f"{own.redis_prefix}webhook:done:crm:{fired_key[0]}:{fired_key[1]}"
        client.set(done_mark, 1)
        assert naming(client, own, {ann, bob}, values)

        # 3. erase, while the lake is locked by a roll: the Redis stores go, the lake step waits
        with locks.held(own_lake(own) / layout.SPOOL, locks.FILES_LOCK):
            code, report = erase_with_short_lake_timeout(own, ann)
        assert code == 3 and report["status"] == "pending" and report["pending"] == ["lake"]
        # received inside the suppression window: refused whenever the worker gets to it
        produce(own, topics.raw, [raw(f"{m}-10", ("email", email))])
        assert erase(own, bob)[1]["oneid"] == ann  # by the alias: the same erasure, resumed
        code, final = erase(own, ann)
        assert code == 0 and final["status"] == "finished" and final["pending"] == []
        steps = final["steps"]
        assert steps["graph"]["identifiers"] == 3 and steps["graph"]["aliases"] == 1
        assert steps["graph"]["merge_outbox"] == 1 and steps["profiles"]["outbox"] >= 1
        assert steps["profiles"]["timers"] >= 1 and steps["webhooks"]["done_marks"] == 1
        assert steps["deadletters"]["marked"] == 1 and steps["lake"]["rows_removed"]["events"] >= 4
        assert erase(own, ann)[1] == final  # idempotent: the same report

        # 4. the pipeline drains what was in flight
        worker = WorkerProcess(own, tmp_path / "worker2.log", free_port()).start()
        wait_caught_up(own, topics.raw)
        wait_caught_up(own, topics.resolved)
        wait_caught_up(own, topics.merges)
        wait_committed(own, f"{own.app_id}-lake")
        time.sleep(3)  # a roll after the last records: the sink filters it
        assert naming(client, own, {ann, bob}, values) == []
        rejections = TopicReader(own, topics.rejections, "identity_rejection")
        reasons = {(r["message_id"], r["reason"]) for r in rejections.until(
            lambda rs: {f"{m}-{i}" for i in (4, 6, 7, 8, 10)} <= {r["message_id"] for r in rs}, 30)}
        rejections.close()
        assert {(f"{m}-6", "suppressed"), (f"{m}-7", "erased"), (f"{m}-8", "erased")} <= reasons
        assert (record["message_id"], "erased") in reasons  # the merge record in flight
        fired = TopicReader(own, topics.triggers, "trigger")
        after = [t for t in fired.until(lambda rs: False, 5)
                 if t["message_id"] == f"{m}-5" or (t["oneid"] in (ann, bob) and t["fired_at"] >= received)]
        fired.close()
        assert after == []  # the outbox entry was never re-sent, nothing fired since
        assert cli(own, "deadletter", "replay").strip() == "replayed 0 dead letter(s)"
        assert client.scard(erased_key(own.redis_prefix)) == 1
        sink.stop()
        hashes = {f"{t}:{graph.pseudonyms.of(t, v)}" for t, v in (("user_id", user), ("email", email),
                                                                  ("anonymous_id", anon2))}
        assert lake_rows_naming(own_lake(own), {ann, bob}, hashes) == {
            "events": 0, "triggers": 0, "merges": 0, "rejections": 0}
        audit = [json.loads(line) for line in cli(own, "identity", "audit", "--count", "5").splitlines()]
        entry = next(e for e in audit if e["action"] == "erase")
        assert entry["oneid"] == ann and not any(v in json.dumps(audit) for v in values)

        # 5. the policy: inside the window their identifiers are still refused; after it they
        # start a new person under a new OneID (the erased ones are never issued again)
        assert graph.lookup("email", email) is None and (f"{m}-10", "suppressed") in reasons
        time.sleep(max(0.0, final["erased_at"] / 1000 + WINDOW_S + 1 - time.time()))
        produce(own, topics.raw, [raw(f"{m}-11", ("email", email))])
        [again] = [r for r in resolved.until(lambda rs: f"{m}-11" in {r["message_id"] for r in rs}, 60)
                   if r["message_id"] == f"{m}-11"]
        assert again["oneid"] not in (ann, bob) and graph.lookup("email", email) == again["oneid"]
        assert f"{m}-10" not in {r["message_id"] for r in resolved.records}
    finally:
        worker.stop()
        sink.stop()
        resolved.close()


def own_lake(settings: Settings) -> Path:
    return Path(settings.lake_path)


def erase_with_short_lake_timeout(settings: Settings, oneid: str) -> tuple[int, dict[str, Any]]:
    """The CLI's erasure with the lake step giving up at once (the lock is held by the test)."""
    script = ("import json, sys\nfrom apps import erasure, factory\nfrom connectors.lake import erase\n"
              "from touchstream.settings import Settings\n"
              "real = erase.erase_person\n"
              "erase.erase_person = lambda root, person, **kw: real(root, person, lock_timeout_s=0.5)\n"
              "factory.erase_person = erase.erase_person\n"
              "s = Settings.from_env()\n"
              "r = factory.erasure_service(s, factory.redis_client(s)).erase(sys.argv[1], 'dpo')\n"
              "print(json.dumps(r.as_dict()))\nsys.exit(0 if r.finished else 3)\n")
    result = subprocess.run([sys.executable, "-c", script, oneid], env=settings.child_env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_api_erases_once_and_answers_every_retry_with_the_same_report(settings, collector, redis_client):
    admin = cli(settings, "keys", "create", "--scope", "admin", "--name", "dpo").strip()
    graph = factory.identity_graph(settings, redis_client)
    m = uuid.uuid4().hex[:8]
    [a] = graph.resolve_batch([{"message_id": f"{m}-0", "timestamp": now_ms(),
                                "identifiers": [{"type": "user_id", "value": f"api-{m}"}]}]).oneids
    [b] = graph.resolve_batch([{"message_id": f"{m}-1", "timestamp": now_ms() + 1,
                                "identifiers": [{"type": "anonymous_id", "value": f"x-{m}"}]}]).oneids
    graph.resolve_batch([{"message_id": f"{m}-2", "timestamp": now_ms() + 2, "identifiers": [
        {"type": "user_id", "value": f"api-{m}"}, {"type": "anonymous_id", "value": f"x-{m}"}]}])
    status, first = api(collector, "DELETE", f"/v1/profiles/{b}", admin)  # by the alias
    assert status in (200, 202) and first["oneid"] == a and first["deleted"] == a
    assert first["steps"]["graph"] == {"aliases": 1, "identifiers": 2, "merge_outbox": 1,
                                       "suppressed_until": first["steps"]["graph"]["suppressed_until"]}
    for oneid in (a, b):  # a retry never answers 404 for an erasure that began
        status, again = api(collector, "DELETE", f"/v1/profiles/{oneid}", admin)
        assert status == (200 if again["status"] == "finished" else 202)
        assert again["steps"]["graph"] == first["steps"]["graph"]
    assert api(collector, "GET", f"/v1/profiles/{a}", admin)[0] == 404
    assert api(collector, "DELETE", "/v1/profiles/o_0000000000000000", admin)[0] == 404


def test_the_resolve_stage_judges_suppression_by_receipt_not_by_processing(settings, redis_client) -> None:
    from streams.stages.resolve import ResolveStage

    prefix = f"{settings.redis_prefix}rs{uuid.uuid4().hex[:6]}:"
    graph = factory.identity_graph(replace(settings, redis_prefix=prefix), redis_client)
    stage = ResolveStage(graph=graph, registry=REGISTRY, raw_topic="raw", event_time_skew_ms=300_000,
                         client=redis_client, prefix=prefix, dedup_window_s=3600)
    [gone] = graph.resolve_batch([{"message_id": "m0", "timestamp": now_ms(),
                                   "identifiers": [{"type": "email", "value": "rs@example.cn"}]}]).oneids
    before = now_ms() - 1
    erased = graph.erase(gone, "dpo", suppress_ms=0)  # no window: receipt alone decides

    def record(mid: str, received: int, timestamp: int) -> Record:
        event = event_record("track", timestamp, message_id=mid, event="Seen", received_at=received,
                             identifiers=[{"type": "email", "value": "rs@example.cn"}])
        return Record(0, int(mid[1:]), None, REGISTRY.encode("event", event), "raw")

    # received before the erasure, processed after it, whatever time its client wrote: suppressed
    late = stage.process([record("m1", before, before + 3_600_000), record("m2", before, 1_000)])
    assert late.resolved == [] and late.suppressed == 2
    # received after it, even with a timestamp from before: a new person with a new OneID
    after = stage.process([record("m3", erased.erased_at + 1, 1_000)])
    [(key, _)] = after.resolved
    assert key.decode() not in (gone, "") and graph.lookup("email", "rs@example.cn") == key.decode()
