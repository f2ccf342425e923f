from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from identity.rules import DAY_MS, DEFAULT_RULES_PATH, load_rules, parse_rules
from touchstream.errors import ConfigError


@pytest.fixture(scope="module")
def default_data() -> dict:
    return yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def with_change(data: dict, path: str, value: object) -> dict:
    """A deep copy of ``data`` with the dotted ``path`` set (or deleted when value is ...)."""
    changed = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = changed
    for name in parents:
        node = node.setdefault(name, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


def test_default_rules_load_with_the_documented_priority_and_limits():
    rules = load_rules()
    assert rules.priority == (
        "user_id", "crm_id", "email", "phone", "wechat_unionid", "wechat_openid", "device_id", "anonymous_id",
    )
    assert rules.person_key == "user_id"
    email = rules.rule("email")
    assert email is not None and email.max_links == 5 and email.window_ms == 365 * DAY_MS
    device = rules.rule("device_id")
    assert device is not None and device.repoint and device.window_ms == 30 * DAY_MS
    assert rules.rule("user_id").max_links == 1 and not rules.rule("user_id").repoint
    assert rules.rule("device_id").max_persons == 5 and rules.rule("email").max_persons == 3
    assert [r.rank for r in rules.types] == list(range(8))


def test_rules_are_frozen():
    rules = load_rules()
    with pytest.raises(AttributeError):
        rules.person_key = "email"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rules.types[0].max_links = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("email", "test@test.com"),
        ("email", "noreply@shop.cn"),
        ("email", "someone@example.com"),
        ("phone", "+8613800000000"),
        ("phone", "+8613800138000"),
        ("phone", "+8613333333333"),
        ("anonymous_id", "undefined"),
        ("anonymous_id", "NULL"),
        ("user_id", "0"),
        ("user_id", "---"),
        ("device_id", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_placeholders_are_blocked(type_, value):
    assert load_rules().rule(type_).is_blocked(value)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("email", "li.42@qq.com"),
        ("email", "testing@qq.com"),
        ("phone", "+8613912345678"),
        ("anonymous_id", "7d2c4f0e-1b6a-4c8e-9f57-3f1d2e5a6b7c"),
        ("user_id", "u100"),
        ("user_id", "10"),
    ],
)
def test_real_values_are_not_blocked(type_, value):
    assert not load_rules().rule(type_).is_blocked(value)


def test_backreference_patterns_keep_their_meaning_next_to_others(default_data):
    # ^\+86(\d)\1{10}$ must still mean "one digit eleven times" when combined with other patterns.
    patterns = [r"^\+99", r"^\+86(\d)\1{10}$", r"^\+861(\d)\1{9}$"]
    data = with_change(default_data, "blocked.phone.patterns", patterns)
    phone = parse_rules(data).rule("phone")
    assert phone.is_blocked("+8622222222222")
    assert phone.is_blocked("+8613333333333")
    assert phone.is_blocked("+99123")
    assert not phone.is_blocked("+8613912345678")


def test_unknown_types_are_rejected_or_linked_last(default_data):
    assert load_rules().rule("loyalty_id") is None
    rules = parse_rules(with_change(default_data, "unknown_types", "link"))
    loyalty = rules.rule("loyalty_id")
    assert loyalty is not None and loyalty.rank == len(rules.types) and loyalty.max_links is None
    assert loyalty.is_blocked("undefined")  # the `any` block list applies to every type
    assert rules.rule("Not A Type") is None


def test_script_config_lists_types_in_priority_order():
    config = json.loads(load_rules().script_config)
    assert config["pk"] == "user_id"
    assert [row[0] for row in config["t"]] == list(load_rules().priority)
    assert config["t"][0] == ["user_id", 1, -1, 0, 3]
    assert config["t"][-1] == ["anonymous_id", 50, 7 * DAY_MS, 1, 5]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("types.email.max", 0, "types.email.max"),
        ("types.email.max", "five", "types.email.max"),
        ("types.email.max", True, "types.email.max"),
        ("types.email.window_days", -1, "types.email.window_days"),
        ("types.email.colour", "red", "types.email.colour"),
        ("types.fax", {"max": 1}, "types.fax"),
        ("types.user_id.repoint", True, "types.user_id.repoint"),
        ("types.device_id.repoint", "yes", "types.device_id.repoint"),
        ("types.user_id.max", ..., "types.user_id.max"),
        ("person_key", "fax", "person_key"),
        ("unknown_types", "maybe", "unknown_types"),
        ("priority", [], "priority"),
        ("blocked.email.patterns", ["(unclosed"], "blocked.email.patterns[0]"),
        ("blocked.email.values", "test@test.com", "blocked.email.values"),
        ("frequency_guard.max_persons", 0, "frequency_guard.max_persons"),
        ("frequency_guard.types", {"user_id": 2}, "frequency_guard.types.user_id"),
        ("storage.index_buckets", 0, "storage.index_buckets"),
        ("storage.index_buckets", 1 << 30, "storage.index_buckets"),
        ("storage.shards", 4, "storage.shards"),
        ("colour", "red", "colour"),
        ("version", 2, "version"),
        ("max_members", 0, "max_members"),
        ("max_members", "lots", "max_members"),
        ("max_members", True, "max_members"),
        ("frequency_guard.window_days", 0, "frequency_guard.window_days"),
        ("frequency_guard.window_days", "90", "frequency_guard.window_days"),
        ("frequency_guard.window_days", float("inf"), "frequency_guard.window_days"),
        ("frequency_guard.window_days", float("nan"), "frequency_guard.window_days"),
        ("types.email.window_days", float("inf"), "types.email.window_days"),
        ("anonymous_types", "anonymous_id", "anonymous_types"),
        ("anonymous_types", ["user_id"], "anonymous_types[0]"),
        ("anonymous_types", ["anonymous_id", "fax"], "anonymous_types[1]"),
        ("anonymous_types", [7], "anonymous_types[0]"),
    ],
)
def test_a_bad_config_raises_config_error_naming_the_key(default_data, path, value, named):
    with pytest.raises(ConfigError) as caught:
        parse_rules(with_change(default_data, path, value), source="test.yaml")
    assert f"{named}:" in str(caught.value)
    assert "test.yaml" in str(caught.value)


def test_window_without_max_is_refused(default_data):
    data = with_change(default_data, "types.phone", {"window_days": 30})
    with pytest.raises(ConfigError, match=r"types\.phone\.window_days"):
        parse_rules(data)


def test_priority_listing_a_type_twice_is_refused(default_data):
    data = with_change(default_data, "priority", ["user_id", "email", "email"])
    with pytest.raises(ConfigError, match=r"priority\[2\]"):
        parse_rules(data)


def test_load_rules_reports_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_rules(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("priority: [user_id\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="priority"):
        load_rules(empty)


def test_a_minimal_file_gets_defaults(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("priority: [user_id, email]\ntypes:\n  user_id: {max: 1}\n", encoding="utf-8")
    rules = load_rules(path)
    assert rules.priority == ("user_id", "email")
    assert rules.rule("email").max_links is None
    assert rules.index_buckets == 4096
    assert rules.default_max_persons == 3


def test_bounds_and_anonymous_types_have_defaults(tmp_path: Path):
    rules = load_rules()
    assert rules.max_members == 200
    assert rules.guard_window_ms == 90 * DAY_MS
    assert rules.anonymous_types == frozenset({"anonymous_id", "device_id"})
    config = json.loads(rules.script_config)
    assert (config["mm"], config["fw"], config["an"]) == (200, 90 * DAY_MS, ["anonymous_id", "device_id"])
    path = tmp_path / "rules.yaml"
    path.write_text("priority: [user_id, anonymous_id]\ntypes:\n  user_id: {max: 1}\n", encoding="utf-8")
    minimal = load_rules(path)
    assert minimal.max_members == 200 and minimal.anonymous_types == frozenset({"anonymous_id"})


def test_bounds_and_anonymous_types_can_be_set(default_data):
    data = with_change(default_data, "max_members", 50)
    data = with_change(data, "frequency_guard.window_days", 1.5)
    data = with_change(data, "anonymous_types", ["anonymous_id"])
    rules = parse_rules(data)
    assert rules.max_members == 50
    assert rules.guard_window_ms == int(1.5 * DAY_MS)
    assert rules.anonymous_types == frozenset({"anonymous_id"})
    assert parse_rules(with_change(default_data, "anonymous_types", [])).anonymous_types == frozenset()


@pytest.mark.parametrize("section", ["blocked", "frequency_guard"])
def test_a_setting_for_a_type_not_in_priority_is_refused_not_ignored(section: str) -> None:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8")))
    data["unknown_types"] = "link"
    if section == "blocked":
        data["blocked"] = {"loyalty_id": {"values": ["0"]}}
        key = "blocked.loyalty_id"
    else:
        data["frequency_guard"] = {"types": {"loyalty_id": 2}}
        key = "frequency_guard.types.loyalty_id"
    with pytest.raises(ConfigError, match=rf"{key}: 'loyalty_id' is not listed in priority"):
        parse_rules(data)
