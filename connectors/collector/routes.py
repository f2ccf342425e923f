"""Segment Tracking API routes. Each handler: key -> body -> validation -> Ingestor -> answer.

A 200 means the broker acknowledged every accepted message; a 503 asks the SDK to retry.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from connectors.collector.auth import basic_username, unauthorized
from connectors.collector.body import read_json
from connectors.ingest import Ingestor
from connectors.outcome import Outcome
from connectors.validation import Limits, validate_batch, validate_message
from touchstream import metrics
from touchstream.keys import ApiKey, KeyChecker

log = logging.getLogger(__name__)

SINGLE_TYPES = ("identify", "track", "page", "screen", "group", "alias")

INGESTOR = web.AppKey("ingestor", Ingestor)
KEYS = web.AppKey("keys", KeyChecker)
LIMITS = web.AppKey("limits", Limits)


async def write_key(request: web.Request) -> ApiKey:
    """The request's write key, or a 401 that says why."""
    key = await request.app[KEYS].check(basic_username(request))
    if key is None:
        metrics.AUTH_FAILURES.labels("bad_write_key").inc()
        raise unauthorized("unknown_or_revoked_key")
    if not key.allows("write"):
        metrics.AUTH_FAILURES.labels("wrong_scope").inc()
        raise unauthorized("key_lacks_write_scope")
    return key


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def single(request: web.Request) -> web.Response:
    """POST /v1/{identify,track,page,screen,group,alias}: one message."""
    key = await write_key(request)
    received = _now_ms()
    limits = request.app[LIMITS]
    body, size = await read_json(request, limits.max_message_bytes)
    record = validate_message(body, type_=request.match_info["type"], received_at_ms=received,
                              source=key.name, limits=limits, raw_size=size)
    final = await request.app[INGESTOR].ingest([record], [Outcome(0, True)], source=key.name,
                                                source_kind="http")
    return web.json_response({"success": True, "duplicate": final[0].duplicate})


async def batch(request: web.Request) -> web.Response:
    """POST /v1/batch and /v1/import: good messages are accepted, each bad one reported."""
    key = await write_key(request)
    received = _now_ms()
    limits = request.app[LIMITS]
    body, size = await read_json(request, limits.max_batch_bytes)
    records, outcomes = validate_batch(body, received_at_ms=received, source=key.name, limits=limits,
                                       raw_size=size)
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
        status=status,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/{type:" + "|".join(SINGLE_TYPES) + "}", single, name="segment_single")
    app.router.add_post("/v1/batch", batch, name="segment_batch")
    app.router.add_post("/v1/import", batch, name="segment_import")
