import copy
import logging
import os
from pathlib import Path

import pytest
import yaml

from connectors.webhook.breaker import BreakerPolicy
from connectors.webhook.config import Backoff, load_config, parse_config
from touchstream.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "connectors/webhook/example_webhooks.yaml"
SECRET = "a-very-secret-value-123"


def base() -> dict:
    return {
        "endpoints": [
            {"name": "crm", "url": "https://crm.example.com/hook", "secret": SECRET,
             "rules": ["high_intent", "tier_upgrade"]},
            {"name": "all", "url": "http://127.0.0.1:9000/x", "secret": SECRET, "rules": ["*"],
             "timeout_s": 2, "max_attempts": 3, "backoff": {"base_s": 0.1, "max_s": 1}},
        ]
    }


def test_the_documented_example_is_valid():
    config = load_config(EXAMPLE)
    assert [e.name for e in config.endpoints] == ["crm", "marketing-automation"]
    assert config.endpoints[1].max_attempts == 8  # the default


def test_defaults_and_values():
    config = parse_config(base())
    crm, everything = config.endpoints
    assert crm.timeout_s == 10.0 and crm.max_attempts == 8 and crm.backoff == Backoff(0.5, 30.0)
    assert everything.timeout_s == 2.0 and everything.max_attempts == 3
    assert everything.backoff == Backoff(0.1, 1.0)
    assert config.done_ttl_s == 30 * 24 * 3600
    assert crm.breaker == BreakerPolicy(failures=5, open_s=30.0)


def test_breaker_settings_and_zero_failures_meaning_never():
    data = base()
    data["endpoints"][0]["breaker"] = {"failures": 0}
    data["endpoints"][1]["breaker"] = {"failures": 3, "open_s": 5}
    crm, everything = parse_config(data).endpoints
    assert crm.breaker == BreakerPolicy(failures=0, open_s=30.0)
    assert everything.breaker == BreakerPolicy(failures=3, open_s=5.0)


def test_matching_rules_by_name_and_star():
    config = parse_config(base())
    assert [e.name for e in config.endpoints_for("high_intent")] == ["crm", "all"]
    assert [e.name for e in config.endpoints_for("tier_upgrade")] == ["crm", "all"]
    assert [e.name for e in config.endpoints_for("cart_abandoned")] == ["all"]
    data = base()
    del data["endpoints"][1]
    assert parse_config(data).endpoints_for("cart_abandoned") == ()
    assert parse_config(data).endpoints[0].matches("high_intent")
    assert not parse_config(data).endpoints[0].matches("High_Intent")


def _mutate(path: str, value):
    data = copy.deepcopy(base())
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if value is KeyError:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("endpoints", [], "endpoints"),
        ("endpoints", "x", "endpoints"),
        ("version", 2, "version"),
        ("surprise", 1, "surprise"),
        ("batch_deadline_s", 0, "batch_deadline_s"),
        ("max_in_flight", 1.5, "max_in_flight"),
        ("done_ttl_s", -1, "done_ttl_s"),
        ("endpoints.0.name", KeyError, "endpoints[0].name"),
        ("endpoints.0.name", "Bad Name", "endpoints[0].name"),
        ("endpoints.1.name", "crm", "endpoints[1].name"),
        ("endpoints.0.url", KeyError, "endpoints[0].url"),
        ("endpoints.0.url", "ftp://x.example/", "endpoints[0].url"),
        ("endpoints.0.url", "/relative", "endpoints[0].url"),
        ("endpoints.0.url", "https://user:pw@x.example/", "endpoints[0].url"),
        ("endpoints.0.secret", KeyError, "endpoints[0].secret"),
        ("endpoints.0.secret", "short", "endpoints[0].secret"),
        ("endpoints.0.secret", 12345678901234567, "endpoints[0].secret"),
        ("endpoints.0.rules", [], "endpoints[0].rules"),
        ("endpoints.0.rules", "high_intent", "endpoints[0].rules"),
        ("endpoints.0.rules", ["ok", 3], "endpoints[0].rules[1]"),
        ("endpoints.0.timeout_s", 0, "endpoints[0].timeout_s"),
        ("endpoints.0.timeout_s", "10s", "endpoints[0].timeout_s"),
        ("endpoints.0.max_attempts", 0, "endpoints[0].max_attempts"),
        ("endpoints.0.max_attempts", True, "endpoints[0].max_attempts"),
        ("endpoints.0.backoff.base_s", -1, "endpoints[0].backoff.base_s"),
        ("endpoints.1.backoff.max_s", 0.05, "endpoints[1].backoff.max_s"),
        ("endpoints.0.backoff.jitter", 1, "endpoints[0].backoff.jitter"),
        ("endpoints.0.secret_env", "HOOK_SECRET", "endpoints[0].secret_env"),
        ("endpoints.0.breaker", "on", "endpoints[0].breaker"),
        ("endpoints.0.breaker.failures", -1, "endpoints[0].breaker.failures"),
        ("endpoints.0.breaker.failures", 2.5, "endpoints[0].breaker.failures"),
        ("endpoints.0.breaker.open_s", 0, "endpoints[0].breaker.open_s"),
        ("endpoints.0.breaker.half_open", 1, "endpoints[0].breaker.half_open"),
    ],
)
def test_validation_errors_name_the_key(path, value, named):
    with pytest.raises(ConfigError) as info:
        parse_config(_mutate(path, value))
    assert f"{named}:" in str(info.value)
    assert SECRET not in str(info.value)


def test_not_a_mapping_and_empty_file():
    with pytest.raises(ConfigError, match="top level"):
        parse_config(None)
    with pytest.raises(ConfigError, match="top level"):
        parse_config([1, 2])


def test_secret_is_never_in_repr():
    config = parse_config(base())
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.endpoints[0])


def test_world_readable_file_is_warned_about(tmp_path, caplog):
    path = tmp_path / "hooks.yaml"
    path.write_text(yaml.safe_dump(base()))
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="connectors.webhook.config"):
        load_config(path)
    assert "world-readable" not in caplog.text
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="connectors.webhook.config"):
        load_config(path)
    assert "world-readable" in caplog.text and SECRET not in caplog.text


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_retry_schedule_longer_than_the_deadline_is_warned_about(caplog):
    data = base()
    data["batch_deadline_s"] = 5
    with caplog.at_level(logging.WARNING, logger="connectors.webhook.config"):
        parse_config(data)
    assert "crm" in caplog.text and "deadline" in caplog.text
    assert "endpoint all:" not in caplog.text  # 0.1+0.2 s of retries fit easily
