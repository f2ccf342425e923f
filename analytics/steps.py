"""Which events a funnel step (or a conversion) means, spelled as the profile rules' ``on:``.

    page                 every page view (any call type alone: track, screen, identify, ...)
    page:Pricing         page views named ``Pricing``
    page:/pricing        page views whose path starts with ``/pricing`` (a leading ``/`` means a path)
    screen:Checkout      screens named ``Checkout``
    Order Completed      track events named so (``track:Order Completed`` is the same)

A step becomes a SQL predicate over the ``events`` view with named parameters, so nothing a user
typed is ever spliced into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.exceptions import AnalyticsError
from schemas.vocabulary import EVENT_TYPES

_NAMED = {"track": "event", "page": "name", "screen": "name"}  # the column holding each type's name
# Segment puts the path in a page call's properties, and in every call's context.page
PATH_SQL = ("coalesce(json_extract_string(properties, '$.path'), "
            "json_extract_string(context, '$.page.path'))")


@dataclass(frozen=True)
class Step:
    label: str
    type: str
    name: str | None = None
    path_prefix: str | None = None

    def predicate(self, key: str) -> tuple[str, dict[str, Any]]:
        """SQL over ``events`` columns and its parameters, named after ``key`` (unique per step)."""
        parts, params = [f"type = ${key}_t"], {f"{key}_t": self.type}
        if self.name is not None:
            parts.append(f"{_NAMED[self.type]} = ${key}_n")
            params[f"{key}_n"] = self.name
        if self.path_prefix is not None:
            parts.append(f"starts_with({PATH_SQL}, ${key}_p)")
            params[f"{key}_p"] = self.path_prefix
        return "(" + " AND ".join(parts) + ")", params


def parse_step(text: str) -> Step:
    """A :class:`Step` from its spelling (see the module docstring); AnalyticsError when unusable."""
    label = text.strip()
    if not label:
        raise AnalyticsError("a step cannot be empty")
    if label in EVENT_TYPES:
        return Step(label, label)
    kind, sep, rest = label.partition(":")
    if sep and kind in _NAMED:
        rest = rest.strip()
        if not rest:
            raise AnalyticsError(f"step {label!r}: a name is missing after {kind}:")
        if kind == "page" and rest.startswith("/"):
            return Step(label, "page", path_prefix=rest)
        return Step(label, kind, name=rest)
    return Step(label, "track", name=label)


def match_sql(steps: list[Step]) -> tuple[list[str], dict[str, Any]]:
    """One predicate per step (``$s0_t``, ``$s1_n``, ...) and all their parameters."""
    predicates: list[str] = []
    params: dict[str, Any] = {}
    for i, step in enumerate(steps):
        sql, own = step.predicate(f"s{i}")
        predicates.append(sql)
        params.update(own)
    return predicates, params


_COLUMNS = ("source", "type", "event", "name")
_JSON_COLUMNS = ("properties", "context", "traits")


def property_sql(spec: str, key: str = "by") -> tuple[str, dict[str, Any]]:
    """A value of each event as text, for breakdowns: ``utm_source`` (a property),
    ``context.campaign.source`` or ``traits.plan`` (a path in that JSON column), or one of the
    columns ``source``, ``type``, ``event``, ``name``."""
    spec = spec.strip()
    if spec in _COLUMNS:
        return spec, {}
    column, _, path = spec.partition(".")
    if column not in _JSON_COLUMNS or not path:
        column, path = "properties", spec
    segments = path.split(".")
    if not all(segments):
        raise AnalyticsError(f"property {spec!r}: an empty name between dots")
    json_path = "$." + ".".join('"' + s.replace('"', '\\"') + '"' for s in segments)
    return f"json_extract_string({column}, ${key})", {key: json_path}

