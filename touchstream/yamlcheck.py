"""Reading a YAML file a user wrote: every refusal names the file and the dotted key.

The identity rules and the webhook config read their files through :func:`read_yaml` and check
values with a :class:`YamlReader`, so a wrong value reads the same everywhere:
``identity rules rules.yaml: types.email.max: must be a whole number >= 1, got 0``.
(The profile rules keep their own readers: a bad rule there is dropped with a reason while the
others load, a different contract.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from touchstream.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML of ``path``; ConfigError naming ``what`` and the file when unreadable."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {source}: cannot be read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {source}: not valid YAML ({exc})") from None


class YamlReader:
    """Checks for the values of one file; subclasses add the file's own shapes."""

    def __init__(self, what: str, source: str) -> None:
        self.what = what
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.what} {self.source}: {key or '(top level)'}: {problem}")

    def mapping(self, value: Any, key: str, allowed: frozenset[str] | None = None, *,
                optional: bool = False) -> Mapping[str, Any]:
        """A mapping with string keys, each in ``allowed`` when given; ``{}`` for an absent
        optional one."""
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be strings, got {name!r}")
            if allowed is not None and name not in allowed:
                raise self.fail(f"{key}.{name}" if key else name,
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def whole(self, value: Any, key: str, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number (not a bool) within the bounds."""
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be a whole number >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be at most {maximum}, got {value}")
        return value

    def seconds(self, value: Any, key: str) -> float:
        """A number of seconds > 0."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.fail(key, f"must be a number of seconds > 0, got {value!r}")
        return float(value)
