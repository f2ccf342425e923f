"""Segment Tracking API routes. Each handler: key -> body -> validation -> rate limit -> Ingestor -> answer.

Browsers use the same handlers: analytics.js posts to the short paths (``/v1/t``, ``/v1/p``,
``/v1/i``, ``/v1/g``, ``/v1/a``, ``/v1/s``, batches to ``/v1/b``) with the write key in the body and
a ``text/plain`` body; RudderStack's beacon posts to ``/beacon/v1/batch?writeKey=``. When the key is
only in the body, the body is parsed before the key is checked. A browser's ``Origin`` must be
allowed for the key (connectors/collector/cors.py).

A 200 means the broker acknowledged every accepted message; a 503 asks the SDK to retry, and so
does a 429 (its Retry-After says when). Parsing and validation run in a small thread pool owned by
the app, so a 500 KB batch does not stall health checks and small requests on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from connectors.collector import cors
from connectors.collector.auth import body_write_key, presented_write_key, unauthorized
from connectors.collector.body import GZIP, decode_body, read_body
from connectors.ingest import Ingestor
from connectors.outcome import Outcome
from connectors.ratelimit import RateLimiter
from connectors.validation import Limits, validate_batch, validate_message
from schemas.vocabulary import EVENT_TYPE_ORDER
from touchstream import metrics
from touchstream.keys import ApiKey, KeyChecker

log = logging.getLogger(__name__)

SINGLE_TYPES = EVENT_TYPE_ORDER  # one route per Segment call type
#: analytics.js's short paths: the call type's first letter
SHORT_TYPES = {type_[0]: type_ for type_ in SINGLE_TYPES}
#: route names the in-flight cap applies to
COLLECTOR_ROUTES = frozenset({"segment_single", "segment_batch", "segment_b", "segment_import",
                              "beacon_batch", *(f"segment_{letter}" for letter in SHORT_TYPES)})
#: plain bodies up to this size are validated on the loop: a thread hop (~80 µs) costs more
INLINE_MAX_BYTES = 16 * 1024
_WRITE_KEY_NAME = b'"writeKey"'

INGESTOR = web.AppKey("ingestor", Ingestor)
KEYS = web.AppKey("keys", KeyChecker)
LIMITS = web.AppKey("limits", Limits)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
EXECUTOR = web.AppKey("validation_executor", ThreadPoolExecutor)

_T = TypeVar("_T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def write_key(request: web.Request, presented: str | None, field: str = "Authorization") -> ApiKey:
    """The write key ``presented`` when it is genuine, may write and is allowed on the page's
    origin; else a 401 (naming ``field``) or 403 that says why."""
    key = await request.app[KEYS].check(presented)
    if key is None:
        metrics.AUTH_FAILURES.labels("bad_write_key").inc()
        raise unauthorized("unknown_or_revoked_key", field)
    if not key.allows("write"):
        metrics.AUTH_FAILURES.labels("wrong_scope").inc()
        raise unauthorized("key_lacks_write_scope", field)
    cors.enforce_origin(request, key)
    return key


async def declared_write_key(request: web.Request) -> ApiKey | None:
    """The key of the Authorization header or URL, checked; None when the body must say it."""
    presented = presented_write_key(request)
    return None if presented is None else await write_key(request, presented)


async def key_from_body(request: web.Request, body: object) -> ApiKey:
    """The body's ``writeKey``, checked: a 401 naming ``writeKey`` when wrong, ``Authorization``
    when no key was presented anywhere."""
    presented = body_write_key(body)
    return await write_key(request, presented, "Authorization" if presented is None else "writeKey")


async def parse_for_key(request: web.Request, raw: bytes, encoding: str,
                        max_bytes: int) -> tuple[object, int]:
    """The body parsed to find its ``writeKey``. A plain body that does not even spell the name
    (or an empty one) gets its 401 before any parsing: a request without a key costs a byte scan."""
    if not raw or (encoding not in GZIP and _WRITE_KEY_NAME not in raw):
        await key_from_body(request, None)
    return await off_loop(request, raw, encoding, decode_body, raw, encoding, max_bytes)


def json_error(status: int, field: str, reason: str, message: str, **headers: str) -> web.Response:
    """The one error body of the HTTP API: ``{"success": false, "error": {field, reason, message}}``."""
    body = {"success": False, "error": {"field": field, "reason": reason, "message": message}}
    return web.json_response(body, status=status, headers=headers or None, dumps=dumps_strict)


def dumps_strict(value: Any) -> str:
    """JSON for answers: NaN and Infinity are refused, never written."""
    return json.dumps(value, allow_nan=False)


async def admit(request: web.Request, key: ApiKey, events: int) -> None:
    """Take ``events`` from the key's token bucket or answer 429 with Retry-After (nothing produced)."""
    decision = await request.app[RATE_LIMITER].take(key, events)
    if decision.allowed:
        return
    metrics.RATE_LIMITED.labels(key.name).inc()
    retry = str(decision.retry_after_s)
    raise web.HTTPTooManyRequests(
        text=dumps_strict({"success": False, "error": {
            "field": "writeKey", "reason": "rate_limited",
            "message": f"this write key is over its rate limit; retry in {retry}s"}}),
        content_type="application/json", headers={"Retry-After": retry},
    )


async def off_loop(request: web.Request, raw: bytes, encoding: str, work: Callable[..., _T],
                   *args: Any) -> _T:
    """``work(*args)`` in the app's validation pool; on the loop when the body is small and plain."""
    if encoding not in GZIP and len(raw) <= INLINE_MAX_BYTES:
        return work(*args)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR], functools.partial(work, *args))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _single_record(raw: bytes, encoding: str, type_: str, received: int, key: ApiKey,
                   limits: Limits) -> dict[str, Any]:
    body, size = decode_body(raw, encoding, limits.max_message_bytes)
    return _validate_single(body, size, type_, received, key, limits)


def _validate_single(body: object, size: int, type_: str, received: int, key: ApiKey,
                     limits: Limits) -> dict[str, Any]:
    return validate_message(body, type_=type_, received_at_ms=received, source=key.name, limits=limits,
                            raw_size=size, trusted=key.trusted, assertable=key.assertable)


def _batch_records(raw: bytes, encoding: str, received: int, key: ApiKey,
                   limits: Limits) -> tuple[list[dict[str, Any] | None], list[Outcome]]:
    body, size = decode_body(raw, encoding, limits.max_batch_bytes)
    return _validate_batch(body, size, received, key, limits)


def _validate_batch(body: object, size: int, received: int, key: ApiKey,
                    limits: Limits) -> tuple[list[dict[str, Any] | None], list[Outcome]]:
    """The key decides the records' source, which identifier types they may assert and their trust
    (stamped on each record: the graph lets an untrusted one link identifiers, never merge people)."""
    return validate_batch(body, received_at_ms=received, source=key.name, limits=limits, raw_size=size,
                          trusted=key.trusted, assertable=key.assertable)


async def single(request: web.Request) -> web.Response:
    """POST /v1/{identify,track,page,screen,group,alias} and /v1/{i,t,p,s,g,a}: one message (one
    token, taken before validation)."""
    key = await declared_write_key(request)
    received = _now_ms()
    raw, encoding = await read_body(request)
    type_ = request.match_info.get("type") or SHORT_TYPES[request.path.rpartition("/")[2]]
    limits = request.app[LIMITS]
    if key is not None:
        await admit(request, key, 1)
        record = await off_loop(request, raw, encoding, _single_record, raw, encoding, type_, received,
                                key, limits)
    else:
        body, size = await parse_for_key(request, raw, encoding, limits.max_message_bytes)
        key = await key_from_body(request, body)
        await admit(request, key, 1)
        record = await off_loop(request, raw, encoding, _validate_single, body, size, type_, received,
                                key, limits)
    final = await request.app[INGESTOR].ingest([record], [Outcome(0, True)], source=key.name,
                                                source_kind="http")
    return web.json_response({"success": True, "duplicate": final[0].duplicate}, dumps=dumps_strict)


async def batch(request: web.Request) -> web.Response:
    """POST /v1/batch, /v1/b, /v1/import and /beacon/v1/batch: good messages are accepted, each bad
    one reported."""
    key = await declared_write_key(request)
    received = _now_ms()
    raw, encoding = await read_body(request)
    limits = request.app[LIMITS]
    if key is not None:
        records, outcomes = await off_loop(request, raw, encoding, _batch_records, raw, encoding, received,
                                           key, limits)
    else:
        body, size = await parse_for_key(request, raw, encoding, limits.max_batch_bytes)
        key = await key_from_body(request, body)
        records, outcomes = await off_loop(request, raw, encoding, _validate_batch, body, size, received,
                                           key, limits)
    await admit(request, key, len(outcomes))
    final = await request.app[INGESTOR].ingest(records, outcomes, source=key.name, source_kind="http")
    rejected = [
        {"index": o.index, "field": o.field, "reason": o.reason, "message": o.message}
        for o in final if not o.accepted
    ]
    accepted = len(final) - len(rejected)
    status = 400 if final and accepted == 0 else 200
    return web.json_response(
        {"success": accepted > 0 or not final, "accepted": accepted,
         "duplicates": sum(1 for o in final if o.duplicate), "rejected": rejected},
        status=status, dumps=dumps_strict,
    )


def inflight_limit(limit: int) -> Middleware:
    """Middleware: at most ``limit`` collector requests in progress; the next gets a 503 at once.

    A full collector answering fast lets the SDK retry elsewhere or later, instead of every
    request slowing down until all time out. Other routes (health, metrics, API) are not counted.
    """
    inflight = 0

    @web.middleware
    async def shed_when_full(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal inflight
        if request.match_info.route.name not in COLLECTOR_ROUTES:
            return await handler(request)
        if inflight >= limit:
            metrics.REQUESTS_SHED.inc()
            return json_error(503, "collector", "overloaded", "too many requests in progress, retry later",
                              **{"Retry-After": "1"})
        inflight += 1
        try:
            return await handler(request)
        finally:
            inflight -= 1

    return shed_when_full


def add_routes(app: web.Application) -> None:
    """The tracking routes, each with its CORS preflight (OPTIONS)."""
    for path, handler, name in (
        ("/v1/{type:" + "|".join(SINGLE_TYPES) + "}", single, "segment_single"),
        *((f"/v1/{letter}", single, f"segment_{letter}") for letter in SHORT_TYPES),
        ("/v1/batch", batch, "segment_batch"),
        ("/v1/b", batch, "segment_b"),
        ("/v1/import", batch, "segment_import"),
        ("/beacon/v1/batch", batch, "beacon_batch"),
    ):
        resource = app.router.add_resource(path, name=name)
        resource.add_route("POST", handler)
        resource.add_route("OPTIONS", cors.preflight("POST"))
