"""The factory reads the settings once for every process: custom identifier types are rules data."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from apps import factory
from connectors.validation import validate_message
from identity.rules import DEFAULT_RULES_PATH
from touchstream.settings import Settings


def custom_rules(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    data["priority"].insert(2, "loyalty_id")
    path = tmp_path / "identity.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_type_added_to_the_rules_file_is_read_from_traits_at_the_edge(tmp_path: Path) -> None:
    settings = Settings.from_env({"TOUCHSTREAM_IDENTITY_RULES_PATH": str(custom_rules(tmp_path))})
    limits = factory.limits(settings)
    assert "loyalty_id" in limits.custom_types
    record = validate_message({"type": "identify", "userId": "u1", "traits": {"loyalty_id": "L-77"}},
                              type_=None, received_at_ms=int(time.time() * 1000), source="web", limits=limits)
    assert {"type": "loyalty_id", "value": "L-77"} in record["identifiers"]


def test_without_a_rules_file_the_shipped_types_are_read() -> None:
    limits = factory.limits(Settings.from_env({}))
    assert set(limits.custom_types) == {"crm_id", "wechat_openid", "wechat_unionid"}
    assert factory.identity_rules(Settings.from_env({})).source.endswith("default_rules.yaml")
