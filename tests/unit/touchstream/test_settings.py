from pathlib import Path

import pytest

from touchstream.errors import ConfigError
from touchstream.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s.broker == "127.0.0.1:9092"
    assert s.http_port == 8080
    assert s.default_phone_region == "CN"


def test_reads_prefixed_variables_and_converts_types():
    s = Settings.from_env({"TOUCHSTREAM_HTTP_PORT": "9090", "TOUCHSTREAM_BROKER": "k:1", "OTHER": "x"})
    assert s.http_port == 9090
    assert s.broker == "k:1"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TOUCHSTREAM_HTTP_PORT": "eighty"}, "TOUCHSTREAM_HTTP_PORT"),
        ({"TOUCHSTREAM_HTTP_PORT": "70000"}, "TOUCHSTREAM_HTTP_PORT"),
        ({"TOUCHSTREAM_PARTITIONS": "0"}, "TOUCHSTREAM_PARTITIONS"),
        ({"TOUCHSTREAM_DEFAULT_PHONE_REGION": "China"}, "TOUCHSTREAM_DEFAULT_PHONE_REGION"),
    ],
)
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_readme_table_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    for name, default, doc in Settings.documented():
        assert f"| `{name}` | `{default}` | {doc} |" in table, name
    assert table.count("| `TOUCHSTREAM_") == len(Settings.documented())


def test_nothing_else_reads_the_environment():
    offenders = []
    for package in ("touchstream", "streams", "identity", "profiles", "schemas", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "settings.py" and package == "touchstream":
                continue
            text = path.read_text()
            if "os.environ" in text or "os.getenv" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_redis_url_is_never_printed():
    """It may carry a password (redis://:secret@host): reprs, logs and test reports show ***."""
    settings = Settings.from_env({"TOUCHSTREAM_REDIS_URL": "redis://:hunter2@cache.internal:6379/0"})
    assert settings.redis_url.endswith("@cache.internal:6379/0")
    assert "hunter2" not in repr(settings) and "redis_url='***'" in repr(settings)


def test_kafka_options_are_librdkafka_properties_and_a_secret():
    settings = Settings.from_env({"TOUCHSTREAM_KAFKA_OPTIONS":
                                  "security.protocol=SASL_SSL; sasl.mechanism=SCRAM-SHA-512;"
                                  "sasl.username=ts;sasl.password=s3cret=x;"})
    assert settings.kafka_client_options() == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "ts",
        "sasl.password": "s3cret=x"}
    assert "s3cret" not in repr(settings)
    assert Settings.from_env({}).kafka_client_options() == {}


@pytest.mark.parametrize("value", ["security.protocol", "Bad Key=1", "bootstrap.servers=x:9092"])
def test_malformed_kafka_options_are_refused_at_start(value):
    with pytest.raises(ConfigError, match="TOUCHSTREAM_KAFKA_OPTIONS"):
        Settings.from_env({"TOUCHSTREAM_KAFKA_OPTIONS": value})
