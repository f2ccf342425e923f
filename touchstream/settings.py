"""The one place that reads the environment.

Every setting is declared once, with its type, default and meaning; the README's table is
checked against this list by a test. Everything else receives a :class:`Settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from touchstream.errors import ConfigError

ENV_PREFIX = "TOUCHSTREAM_"


_KAFKA_KEY = re.compile(r"^[a-z][a-z0-9_.]*$")


def _setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Runtime settings; build with :meth:`from_env`. Field ``x`` is read from ``TOUCHSTREAM_X``."""

    broker: str = _setting("127.0.0.1:9092", "Kafka bootstrap servers (host:port[,host:port])")
    redis_url: str = _setting("redis://127.0.0.1:6379/0", "Redis URL for identity, profiles, keys, dedup",
                              secret=True)  # may hold a password: redis://:secret@host
    topic_prefix: str = _setting("touchstream", "Prefix of every Kafka topic name")
    partitions: int = _setting(6, "Partitions of the event topics when the project creates them")
    app_id: str = _setting("touchstream", "Consumer group of the workers")
    http_host: str = _setting("127.0.0.1", "Address the collector/API binds to")
    http_port: int = _setting(8080, "Port of the collector/API (`touchstream serve`)")
    http_ops_port: int = _setting(
        6065, "Internal port of `touchstream serve` for /metrics and /openapi.json (0: on the public port)"
    )
    http_ops_host: str = _setting(
        "127.0.0.1", "Address of that internal port (0.0.0.0 in a pod, which no Service exposes)"
    )
    worker_web_port: int = _setting(6066, "Port of a worker's web server (metrics, health)")
    default_phone_region: str = _setting("CN", "Region for phone numbers written without +country code")
    dedup_window_s: int = _setting(7 * 24 * 3600, "How long a messageId is remembered for dedup, seconds")
    max_event_age_s: int = _setting(
        2 * 365 * 24 * 3600, "Events with a timestamp older than this are rejected, seconds"
    )
    max_event_future_s: int = _setting(
        24 * 3600, "Events with a timestamp further in the future are rejected, seconds"
    )
    batch_size: int = _setting(500, "Most events a worker stage takes per batch (one Redis round trip each)")
    batch_within_ms: int = _setting(10, "Longest a stage waits to fill a batch, milliseconds")
    stream_dedup_window_s: int = _setting(
        24 * 3600, "How long stream stages remember a messageId's first position, seconds"
    )
    redis_prefix: str = _setting("ts:", "Prefix of every Redis key the project writes")
    webhook_metrics_port: int = _setting(6067, "Port of the webhook sink's Prometheus /metrics (0: none)")
    identity_rules_path: str = _setting("", "Identity merge rules YAML (empty: identity/default_rules.yaml)")
    profile_rules_path: str = _setting(
        "", "Profile rules YAML, hot-reloaded (empty: profiles/default_rules.yaml)"
    )
    key_cache_s: int = _setting(5, "Seconds a verified API key is cached; a revoked key stops within this")
    log_level: str = _setting("INFO", "Log level of the CLI commands and workers")
    event_time_skew_s: int = _setting(
        300, "Event times ahead of receipt count as receipt + this for lateness and ordering, seconds"
    )
    max_traits_per_event: int = _setting(200, "Most trait keys one message may carry (more: rejected)")
    max_trait_key_chars: int = _setting(128, "Longest trait name, characters (longer: rejected)")
    max_trait_value_chars: int = _setting(
        4096, "Longest trait value as JSON text, characters (longer: rejected)"
    )
    max_traits_per_profile: int = _setting(
        500, "Most traits one profile keeps; new ones past it are counted, not kept"
    )
    max_identifiers_per_event: int = _setting(20, "Most identifiers one message may assert (more: rejected)")
    anonymous_profile_ttl_s: int = _setting(
        90 * 24 * 3600, "An anonymous-only profile idle this long is removed, seconds (0: kept)"
    )
    rate_limit_per_s: int = _setting(
        1000, "Default events per second a write key may send (per key: keys create --rate)"
    )
    rate_limit_burst: int = _setting(10_000, "Default burst of a write key's token bucket, events")
    max_inflight_requests: int = _setting(
        64, "Requests one collector process handles at once; more get a fast 503"
    )
    lake_path: str = _setting(
        ".local/lake",
        "Folder of the Parquet lake (`touchstream lake run`, `touchstream sql`), or a URL pyarrow opens "
        "(s3://bucket/prefix, gs://, hdfs://, file://; credentials from the AWS_* / cloud variables)",
    )
    lake_spool_path: str = _setting(
        "", "Local folder of the lake sink's spool (empty: <lake>/_spool; .local/lake-spool for a lake URL)"
    )
    lake_s3_endpoint: str = _setting(
        "", "S3-compatible endpoint of an s3:// lake, http(s)://host:port (empty: AWS_ENDPOINT_URL or AWS)"
    )
    lake_roll_bytes: int = _setting(
        128 * 1024 * 1024, "A lake partition's rows are rolled into a Parquet file at this many Arrow bytes"
    )
    lake_roll_s: int = _setting(
        60, "A lake partition's rows are rolled into a Parquet file at this age, seconds"
    )
    lake_batch_size: int = _setting(
        5000, "Most records the lake sink takes per batch (one segment per partition)"
    )
    lake_metrics_port: int = _setting(6068, "Port of the lake sink's Prometheus /metrics (0: none)")
    erasure_suppression_s: int = _setting(
        56 * 24 * 3600, "After an erasure, events carrying the person's identifiers received within this "
        "are refused; later ones start a new person with a new OneID, seconds (keep it >= the raw and "
        "dead-letter topics' retention)"
    )
    pseudonym_secret: str = _setting(
        "", "Key of the identifiers' keyed pseudonyms (HMAC): OneIDs, value hashes, suppressions; 32+ "
        "characters (empty: read PSEUDONYM_SECRET_FILE)", secret=True
    )
    pseudonym_secret_previous: str = _setting(
        "", "The secret before a rotation: lookups of hashes stored under it still match (README)",
        secret=True,
    )
    pseudonym_secret_file: str = _setting(
        ".local/pseudonym.secret", "File holding the pseudonym secret when PSEUDONYM_SECRET is empty "
        "(`make up` writes one for the local stack)"
    )
    kafka_options: str = _setting(
        "", "librdkafka options for every Kafka client, `key=value;key=value` (TLS, SASL)", secret=True
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``TOUCHSTREAM_*`` variables; a malformed value raises :class:`ConfigError` naming it."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name not in env:
                continue
            raw = env[name]
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
            else:
                values[f.name] = raw
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.http_port < 65536:
            raise ConfigError(f"{ENV_PREFIX}HTTP_PORT must be a TCP port, got {self.http_port}")
        if not 0 <= self.http_ops_port < 65536 or self.http_ops_port == self.http_port:
            raise ConfigError(f"{ENV_PREFIX}HTTP_OPS_PORT must be a TCP port other than HTTP_PORT, or 0, "
                              f"got {self.http_ops_port}")
        if not 0 <= self.webhook_metrics_port < 65536:
            raise ConfigError(f"{ENV_PREFIX}WEBHOOK_METRICS_PORT must be a TCP port or 0, "
                              f"got {self.webhook_metrics_port}")
        for name in ("max_traits_per_event", "max_trait_key_chars", "max_trait_value_chars",
                     "max_traits_per_profile", "max_identifiers_per_event", "rate_limit_per_s",
                     "rate_limit_burst", "max_inflight_requests", "lake_roll_bytes", "lake_roll_s",
                     "lake_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.lake_metrics_port < 65536:
            raise ConfigError(f"{ENV_PREFIX}LAKE_METRICS_PORT must be a TCP port or 0, "
                              f"got {self.lake_metrics_port}")
        self.kafka_client_options()  # refuses a malformed value now, not in the first client
        if self.partitions < 1:
            raise ConfigError(f"{ENV_PREFIX}PARTITIONS must be at least 1, got {self.partitions}")
        if len(self.default_phone_region) != 2 or not self.default_phone_region.isalpha():
            raise ConfigError(
                f"{ENV_PREFIX}DEFAULT_PHONE_REGION must be a two-letter region code, "
                f"got {self.default_phone_region!r}"
            )

    def kafka_client_options(self) -> dict[str, str]:
        """``kafka_options`` as librdkafka properties, e.g. ``security.protocol=SASL_SSL;
        sasl.mechanism=SCRAM-SHA-512;sasl.username=u;sasl.password=p;ssl.ca.location=/ca.pem``."""
        options: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.kafka_options.split(";"))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not _KAFKA_KEY.match(key):
                raise ConfigError(f"{ENV_PREFIX}KAFKA_OPTIONS: {key or item[:20]!r} is not key=value "
                                  "with a librdkafka property name")
            if key == "bootstrap.servers":
                raise ConfigError(f"{ENV_PREFIX}KAFKA_OPTIONS: set the broker with {ENV_PREFIX}BROKER")
            options[key] = value.strip()
        return options

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """(env name, default, meaning) for every setting: the README's table."""
        return [
            (ENV_PREFIX + f.name.upper(), str(f.default), f.metadata["doc"]) for f in fields(cls)
        ]

    def child_env(self) -> dict[str, str]:
        """This process's environment plus these settings: a subprocess then reads exactly them."""
        env = dict(os.environ)
        env.update({ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)})
        return env

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.metadata['secret'] else getattr(self, f.name)!r}" for f in fields(self)
        )
        return f"Settings({shown})"
