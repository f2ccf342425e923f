"""Identifier types and their priority are written once, in the identity rules; the edge follows."""

from __future__ import annotations

import copy

import yaml

from connectors.ingest import partition_key
from identity.identifiers import CORE_TYPES, DEFAULT_CUSTOM_TYPES
from identity.rules import DEFAULT_RULES_PATH, load_rules, parse_rules


def record(*ids: tuple[str, str]) -> dict:
    return {"message_id": "m1", "identifiers": [{"type": t, "value": v} for t, v in ids]}


def test_ranks_follow_the_priority_list():
    rules = load_rules()
    assert list(rules.ranks) == list(rules.priority)
    assert rules.ranks["user_id"] == 0 and rules.ranks["anonymous_id"] == len(rules.priority) - 1


def test_the_partition_key_is_the_strongest_identifier_by_the_rules():
    event = record(("anonymous_id", "a1"), ("email", "x@qq.com"), ("device_id", "d1"))
    assert partition_key(event) == b"email:x@qq.com"
    data = copy.deepcopy(yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8")))
    data["priority"].remove("device_id")
    data["priority"].insert(1, "device_id")
    assert partition_key(event, parse_rules(data)) == b"device_id:d1"


def test_unlisted_types_rank_below_listed_ones_and_no_identifier_keys_by_message():
    assert partition_key(record(("loyalty_id", "l1"), ("anonymous_id", "a1"))) == b"anonymous_id:a1"
    assert partition_key(record(("loyalty_id", "l1"))) == b"loyalty_id:l1"
    assert partition_key(record()) == b"message_id:m1"


def test_the_edge_extracts_every_type_the_shipped_rules_rank():
    # the edge's own list of types (what it pulls out of traits) must not drift from the rules
    assert set(CORE_TYPES) | set(DEFAULT_CUSTOM_TYPES) == set(load_rules().priority)
