"""Resolved events shaped like the shared contract, for the profiles tests."""

from __future__ import annotations

import itertools
from typing import Any

from schemas.testing import event_record

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
S = 1000
M = 60 * S
H = 60 * M
D = 24 * H

_ids = itertools.count()


def event(
    kind: str,
    ts: int,
    oneid: str = "p1",
    *,
    name: str | None = None,
    path: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    anonymous_id: str = "anon-1",
    message_id: str | None = None,
) -> dict[str, Any]:
    props = dict(properties or {})
    if path is not None:
        props.setdefault("path", path)
        props.setdefault("url", f"https://example.com{path}")
    return event_record(
        kind, ts, message_id=message_id or f"msg-{next(_ids)}",
        event=name if kind == "track" else None, name=name if kind in ("page", "screen") else None,
        anonymous_id=anonymous_id, original_timestamp=ts, sent_at=ts,
        identifiers=[{"type": "anonymous_id", "value": anonymous_id}],
        properties=props, traits=traits or {}, context=context or {}, oneid=oneid,
    )


def page(path: str, ts: int, oneid: str = "p1", **kw: Any) -> dict[str, Any]:
    return event("page", ts, oneid, path=path, **kw)


def track(name: str, ts: int, oneid: str = "p1", **kw: Any) -> dict[str, Any]:
    return event("track", ts, oneid, name=name, **kw)


def identify(traits: dict[str, Any], ts: int, oneid: str = "p1", **kw: Any) -> dict[str, Any]:
    return event("identify", ts, oneid, traits=traits, **kw)


def numbered(events: list[dict[str, Any]], start: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """``[(offset, event)]`` as a partition would deliver them."""
    return list(enumerate(events, start=start))
