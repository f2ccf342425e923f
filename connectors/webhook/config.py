"""The webhook config file: which endpoints get which triggers, signed with which secret.

Secrets live in the file itself (nothing here reads the environment), so the file must be
readable by the sink's user only: a world-readable file is loaded but warned about. Every
mistake raises :class:`ConfigError` naming the dotted key (``endpoints[1].timeout_s``) and never
quoting a secret.
"""

from __future__ import annotations

import logging
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from connectors.webhook.breaker import BreakerPolicy
from touchstream.yamlcheck import YamlReader, read_yaml

log = logging.getLogger(__name__)

#: Endpoint names are Redis key parts and metric labels: short, plain.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ALL_RULES = "*"
MIN_SECRET_LEN = 16
DAY_S = 24 * 3600

WHAT = "webhook config"
_TOP_KEYS = frozenset({"version", "endpoints", "batch_deadline_s", "max_in_flight", "done_ttl_s"})
_ENDPOINT_KEYS = frozenset({"name", "url", "secret", "rules", "timeout_s", "max_attempts", "backoff",
                            "max_in_flight", "breaker"})
_BACKOFF_KEYS = frozenset({"base_s", "max_s"})
_BREAKER_KEYS = frozenset({"failures", "open_s"})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: attempt n waits about ``base_s * 2**(n-1)``, at most ``max_s``."""

    base_s: float = 0.5
    max_s: float = 30.0


@dataclass(frozen=True)
class Endpoint:
    """One receiver of triggers."""

    name: str
    url: str
    secret: str = field(repr=False)
    rules: frozenset[str]
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff: Backoff = Backoff()
    max_in_flight: int = 32
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def matches(self, rule: str) -> bool:
        """True when this endpoint subscribes to ``rule`` (by name or through ``"*"``)."""
        return ALL_RULES in self.rules or rule in self.rules

    @property
    def nominal_retry_s(self) -> float:
        """Sum of the un-jittered waits between ``max_attempts`` attempts (what a dead one costs)."""
        return sum(min(self.backoff.max_s, self.backoff.base_s * 2 ** (n - 1))
                   for n in range(1, self.max_attempts))


@dataclass(frozen=True)
class WebhookConfig:
    """Validated webhook config; build with :func:`load_config` or :func:`parse_config`."""

    endpoints: tuple[Endpoint, ...]
    batch_deadline_s: float = 120.0
    max_in_flight: int = 256
    done_ttl_s: int = 30 * DAY_S
    source: str = "<webhooks>"
    _by_rule: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict, compare=False, repr=False)

    def endpoints_for(self, rule: str) -> tuple[Endpoint, ...]:
        """The endpoints subscribed to ``rule``, in file order (memoised per rule name)."""
        found = self._by_rule.get(rule)
        if found is None:
            found = tuple(e for e in self.endpoints if e.matches(rule))
            self._by_rule[rule] = found
        return found


def load_config(path: str | Path) -> WebhookConfig:
    """Read and validate a webhook config file; warns when other users can read its secrets."""
    source = Path(path)
    data = read_yaml(source, WHAT)
    mode = source.stat().st_mode
    if mode & stat.S_IROTH:
        log.warning("webhook config %s holds secrets but is world-readable (mode %o): chmod 600 it",
                    source, stat.S_IMODE(mode))
    return parse_config(data, source=str(source))


def parse_config(data: Any, source: str = "<webhooks>") -> WebhookConfig:
    """Validate a config mapping (the parsed YAML); a wrong key raises ConfigError naming it."""
    return _Parser(source).parse(data)


class _Parser(YamlReader):
    def __init__(self, source: str) -> None:
        super().__init__(WHAT, source)

    def parse(self, data: Any) -> WebhookConfig:
        top = self.mapping(data, "", _TOP_KEYS)
        version = top.get("version", 1)
        if version != 1:
            raise self.fail("version", f"only version 1 is understood, got {version!r}")
        items = top.get("endpoints")
        if not isinstance(items, list) or not items:
            raise self.fail("endpoints", "must be a non-empty list of endpoints")
        endpoints: list[Endpoint] = []
        for i, item in enumerate(items):
            endpoint = self.endpoint(item, f"endpoints[{i}]")
            if any(e.name == endpoint.name for e in endpoints):
                raise self.fail(f"endpoints[{i}].name", f"{endpoint.name!r} is used twice")
            endpoints.append(endpoint)
        config = WebhookConfig(
            endpoints=tuple(endpoints),
            batch_deadline_s=self.seconds(top.get("batch_deadline_s", 120.0), "batch_deadline_s"),
            max_in_flight=self.whole(top.get("max_in_flight", 256), "max_in_flight"),
            done_ttl_s=self.whole(top.get("done_ttl_s", 30 * DAY_S), "done_ttl_s"),
            source=self.source,
        )
        for e in config.endpoints:
            if e.nominal_retry_s > config.batch_deadline_s:
                log.warning("webhook endpoint %s: %s attempts wait ~%.0fs in all, more than "
                            "batch_deadline_s=%.0fs; the deadline will cut its retries short",
                            e.name, e.max_attempts, e.nominal_retry_s, config.batch_deadline_s)
        return config

    def endpoint(self, value: Any, key: str) -> Endpoint:
        body = self.mapping(value, key, _ENDPOINT_KEYS)
        for required in ("name", "url", "secret", "rules"):
            if required not in body:
                raise self.fail(f"{key}.{required}", "missing")
        name = body["name"]
        if not isinstance(name, str) or not NAME.match(name):
            raise self.fail(f"{key}.name", f"must match {NAME.pattern}, got {name!r}")
        url = self.url(body["url"], f"{key}.url")
        secret = body["secret"]
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LEN:
            raise self.fail(f"{key}.secret", f"must be a string of at least {MIN_SECRET_LEN} characters")
        rules = body["rules"]
        if not isinstance(rules, list) or not rules:
            raise self.fail(f"{key}.rules", 'must be a non-empty list of rule names or "*"')
        for j, rule in enumerate(rules):
            if not isinstance(rule, str) or not rule.strip():
                raise self.fail(f"{key}.rules[{j}]", f"must be a rule name or \"*\", got {rule!r}")
        backoff = self.backoff(body.get("backoff", {}), f"{key}.backoff")
        return Endpoint(
            name=name,
            url=url,
            secret=secret,
            rules=frozenset(rules),
            timeout_s=self.seconds(body.get("timeout_s", 10.0), f"{key}.timeout_s"),
            max_attempts=self.whole(body.get("max_attempts", 8), f"{key}.max_attempts"),
            backoff=backoff,
            max_in_flight=self.whole(body.get("max_in_flight", 32), f"{key}.max_in_flight"),
            breaker=self.breaker(body.get("breaker", {}), f"{key}.breaker"),
        )

    def url(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be an http(s) URL, got {type(value).__name__}")
        try:
            parsed = URL(value)
        except ValueError:
            raise self.fail(key, "is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise self.fail(key, f"must be an absolute http(s) URL, got scheme {parsed.scheme!r}")
        if parsed.user or parsed.password:
            raise self.fail(key, "must not carry credentials; the signature authenticates the sink")
        return value

    def breaker(self, value: Any, key: str) -> BreakerPolicy:
        body = self.mapping(value, key, _BREAKER_KEYS)
        failures = self.whole(body.get("failures", BreakerPolicy.failures), f"{key}.failures", minimum=0)
        open_s = self.seconds(body.get("open_s", BreakerPolicy.open_s), f"{key}.open_s")
        return BreakerPolicy(failures, open_s)

    def backoff(self, value: Any, key: str) -> Backoff:
        body = self.mapping(value, key, _BACKOFF_KEYS)
        base = self.seconds(body.get("base_s", Backoff.base_s), f"{key}.base_s")
        most = self.seconds(body.get("max_s", Backoff.max_s), f"{key}.max_s")
        if most < base:
            raise self.fail(f"{key}.max_s", f"must be >= base_s ({base}), got {most}")
        return Backoff(base, most)
