from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from identity.rules import load_rules
from identity.synthetic import (
    LISTED_PLACEHOLDER_EMAIL,
    UNLISTED_SHARED_EMAIL,
    generate,
    squeeze,
)
from schemas.codec import default_registry


@pytest.fixture(scope="module")
def traffic():
    return generate(400, seed=11)


def test_same_seed_same_traffic():
    first = generate(60, seed=3)
    second = generate(60, seed=3)
    assert first == second


def test_other_seed_other_traffic():
    first, _ = generate(60, seed=3)
    other, _ = generate(60, seed=4)
    assert [e["message_id"] for e in first] != [e["message_id"] for e in other]


def test_events_are_in_time_order_and_each_has_a_true_person(traffic):
    events, truth = traffic
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert len({e["message_id"] for e in events}) == len(events)
    assert set(truth) == {e["message_id"] for e in events}
    assert len(set(truth.values())) == 400


def test_events_follow_the_shared_record_contract(traffic):
    events, _ = traffic
    schema = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "event.avsc").read_text())
    keys = {f["name"] for f in schema["fields"]}
    registry = default_registry()
    for event in events[:500]:
        registry.encode("event", event)  # the codec takes it as it is
        assert set(event) == keys
        assert event["type"] in {"identify", "track", "page", "screen"}
        for name in ("properties", "traits", "context", "integrations"):
            json.loads(event[name])
        assert all(set(i) == {"type", "value"} for i in event["identifiers"])


def test_identifiers_are_normalised_while_traits_keep_the_raw_variants(traffic):
    events, _ = traffic
    raw_emails = Counter()
    for event in events:
        for ident in event["identifiers"]:
            if ident["type"] == "email":
                assert ident["value"] == ident["value"].strip().lower()
            if ident["type"] == "phone":
                assert ident["value"].startswith("+86") and ident["value"][1:].isdigit()
        traits = json.loads(event["traits"])
        if "email" in traits:
            raw_emails[traits["email"] != traits["email"].strip().lower()] += 1
    assert raw_emails[True] > 50  # upper-case and padded variants are really there


def test_every_channel_and_hazard_is_present(traffic):
    events, truth = traffic
    sources = Counter(e["source"] for e in events)
    assert {"web", "app", "wechat-mp", "wechat-oa", "store-pos", "crm-import"} <= set(sources)
    types = Counter(i["type"] for e in events for i in e["identifiers"])
    assert {"user_id", "anonymous_id", "email", "phone", "device_id", "crm_id",
            "wechat_openid", "wechat_unionid"} <= set(types)
    values = Counter(i["value"] for e in events for i in e["identifiers"])
    assert values[LISTED_PLACEHOLDER_EMAIL] > 0
    assert values["+8613800000000"] > 0
    shared_by = defaultdict(set)
    for e in events:
        for i in e["identifiers"]:
            if i["value"] == UNLISTED_SHARED_EMAIL:
                shared_by[i["value"]].add(truth[e["message_id"]])
    assert len(shared_by[UNLISTED_SHARED_EMAIL]) > load_rules().rule("email").max_persons


def test_family_tablets_carry_two_user_ids(traffic):
    events, _ = traffic
    users_per_device = defaultdict(set)
    for event in events:
        ids = {i["type"]: i["value"] for i in event["identifiers"]}
        if "device_id" in ids and "user_id" in ids:
            users_per_device[ids["device_id"]].add(ids["user_id"])
    assert sum(1 for users in users_per_device.values() if len(users) == 2) >= 5


def test_late_identify_follows_anonymous_browsing(traffic):
    events, _ = traffic
    first_seen: dict[str, int] = {}
    late = 0
    for event in events:
        ids = {i["type"]: i["value"] for i in event["identifiers"]}
        anon = ids.get("anonymous_id")
        if anon is None:
            continue
        if event["type"] == "identify" and anon in first_seen and first_seen[anon] < event["timestamp"]:
            late += 1
        first_seen.setdefault(anon, event["timestamp"])
    assert late > 50


def test_squeeze_moves_receipt_and_original_times_with_the_timestamp() -> None:
    events, _ = generate(20, seed=3)
    moved = squeeze(events, 1_000_000, 60_000)
    assert moved[0]["timestamp"] == 1_000_000 and moved[-1]["timestamp"] == 1_060_000
    assert [e["timestamp"] for e in moved] == sorted(e["timestamp"] for e in moved)
    for before, after in zip(events, moved, strict=True):
        assert after["original_timestamp"] == after["timestamp"]
        assert after["received_at"] - after["timestamp"] == before["received_at"] - before["timestamp"]
    assert squeeze([], 0, 10) == []
