"""The read and admin API: identities and profiles (``Authorization: Bearer <key>``).

- ``GET /v1/identities/{type}/{value}`` (read): the person an identifier belongs to; the value
  goes through the edge normaliser first, so any phone or email spelling finds them.
- ``GET /v1/profiles/{oneid}`` (read): identifiers and state; an alias answers with its survivor.
- ``GET /v1/profiles/{oneid}/triggers`` (read): triggers fired for the profile, newest first.
- ``DELETE /v1/profiles/{oneid}`` (admin): erase the person from every store (``apps/erasure.py``):
  200 with the report once finished, 202 with it while steps are pending (a retry resumes; never
  404 for an erasure that began); audited; suppressed.
- ``GET /v1/profiles/{oneid}/export`` (admin): subject access, everything held on the person.
- ``POST /v1/profiles/{oneid}/unmerge`` (admin): split one identifier (and what came through it)
  off into a new profile; audited.

Graph and store calls use the synchronous Redis client in a thread, off the event loop. Every
read of a person is audited first (``touchstream/audit.py``: who, when, which OneID).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from apps import access, unmerges
from apps.erasure import ErasureService, NothingToErase
from connectors.collector.auth import bearer_token
from connectors.collector.body import read_json
from connectors.collector.routes import dumps_strict
from identity.exceptions import IdentityError, NotLinkedError, ProfileNotFoundError
from identity.graph import IdentityGraph
from identity.identifiers import InvalidIdentifier, known_types, normalise
from profiles.store import ProfileStore
from streams.producers import AsyncProducer
from streams.topics import Topics
from touchstream import audit, metrics
from touchstream.errors import ValidationError
from touchstream.keys import ApiKey, KeyChecker
from touchstream.text import is_utf8

GRAPH = web.AppKey("graph", IdentityGraph)
API_KEYS = web.AppKey("api_keys", KeyChecker)
REGION = web.AppKey("phone_region", str)
PROFILES = web.AppKey("profiles", ProfileStore)
PRODUCER = web.AppKey("api_producer", AsyncProducer)  # the collector's producer, for unmerge records
TOPICS = web.AppKey("api_topics", Topics)
AUDIT = web.AppKey("read_audit", tuple)  # (async Redis client, key prefix): where reads are recorded
LAKE_ROOT = web.AppKey[Path | str]("lake_root")  # the lake (folder or URL) subject access reads
ERASURE = web.AppKey("erasure", ErasureService)
_MAX_UNMERGE_BYTES = 64 * 1024


def _bearer_error(status: int, reason: str) -> web.HTTPException:
    body = dumps_strict({"success": False, "error": {"field": "Authorization", "reason": reason}})
    cls = web.HTTPUnauthorized if status == 401 else web.HTTPForbidden
    return cls(text=body, content_type="application/json", headers={"WWW-Authenticate": "Bearer"})


async def require(request: web.Request, scope: str) -> ApiKey:
    """The request's API key when it allows ``scope``; 401 for a bad key, 403 for a weak one."""
    key = await request.app[API_KEYS].check(bearer_token(request))
    if key is None:
        metrics.AUTH_FAILURES.labels("bad_api_key").inc()
        raise _bearer_error(401, "unknown_or_revoked_key")
    if not key.allows(scope):
        metrics.AUTH_FAILURES.labels("wrong_scope").inc()
        raise _bearer_error(403, f"key_lacks_{scope}_scope")
    return key


async def audited(request: web.Request, key: ApiKey, subject: str, found: bool) -> None:
    """Record this read of ``subject`` by ``key`` before anything is answered."""
    target = request.app.get(AUDIT)
    if target is not None:
        client, prefix = target
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else ""
        await audit.record_read(client, prefix, actor=f"api:{key.name}", route=f"{request.method} {route}",
                                subject=subject, found=found)


def _not_found(what: str) -> web.HTTPNotFound:
    error = {"field": "path", "reason": "not_found", "message": what}
    body = dumps_strict({"success": False, "error": error})
    return web.HTTPNotFound(text=body, content_type="application/json")


async def get_identity(request: web.Request) -> web.Response:
    key = await require(request, "read")
    type_ = request.match_info["type"]
    if type_ not in known_types():
        raise ValidationError("type", "unknown_type", f"unknown identifier type {type_!r}")
    try:
        value = normalise(type_, request.match_info["value"], default_region=request.app[REGION])
    except InvalidIdentifier as exc:
        raise ValidationError("value", exc.reason, f"invalid {type_}: {exc.reason}") from None
    graph = request.app[GRAPH]
    oneid = await asyncio.to_thread(graph.lookup, type_, value)
    await audited(request, key, oneid or f"type:{type_}", found=oneid is not None)  # never the value
    if oneid is None:
        raise _not_found("no profile has this identifier")
    identifiers = await asyncio.to_thread(graph.profile_identifiers, oneid)
    return web.json_response({"oneid": oneid, "identifiers": identifiers}, dumps=dumps_strict)


async def get_profile(request: web.Request) -> web.Response:
    key = await require(request, "read")
    requested = request.match_info["oneid"]
    graph = request.app[GRAPH]
    survivor = await asyncio.to_thread(graph.resolve_alias, requested)
    identifiers = await asyncio.to_thread(graph.profile_identifiers, survivor)
    store = request.app.get(PROFILES)
    state = await asyncio.to_thread(store.get_profile, survivor) if store is not None else None
    await audited(request, key, survivor, found=bool(identifiers or state))
    if not identifiers and not state:
        raise _not_found("no such profile")
    body: dict[str, object] = {"oneid": survivor, "identifiers": identifiers}
    if survivor != requested:
        body["merged_from"] = requested  # the requested OneID is an alias of the survivor
    if state is not None:
        body["profile"] = state
    return web.json_response(body, dumps=dumps_strict)


async def get_triggers(request: web.Request) -> web.Response:
    key = await require(request, "read")
    graph = request.app[GRAPH]
    survivor = await asyncio.to_thread(graph.resolve_alias, request.match_info["oneid"])
    await audited(request, key, survivor, found=True)
    store = request.app.get(PROFILES)
    fired = await asyncio.to_thread(store.list_triggers, survivor) if store is not None else []
    return web.json_response({"oneid": survivor, "triggers": fired}, dumps=dumps_strict)


async def delete_profile(request: web.Request) -> web.Response:
    key = await require(request, "admin")
    service = request.app[ERASURE]
    try:
        report = await asyncio.to_thread(service.erase, request.match_info["oneid"], f"api:{key.name}")
    except NothingToErase:
        raise _not_found("no such profile") from None
    body = {"deleted": report.oneid, **report.as_dict(),
            "identifiers_removed": int(report.steps.get("graph", {}).get("identifiers", 0))}
    return web.json_response(body, status=200 if report.finished else 202, dumps=dumps_strict)


async def unmerge(request: web.Request) -> web.Response:
    key = await require(request, "admin")
    body, _ = await read_json(request, _MAX_UNMERGE_BYTES)
    if not isinstance(body, dict) or not isinstance(body.get("type"), str) or "value" not in body:
        raise ValidationError("body", "missing_identifier", 'body must be {"type": ..., "value": ...}')
    if body["type"] not in known_types():
        raise ValidationError("type", "unknown_type", "unknown identifier type")
    if isinstance(body["value"], str) and not is_utf8(body["value"]):
        raise ValidationError("value", "bad_unicode", "value must be valid Unicode (no lone surrogates)")
    try:
        value = normalise(body["type"], body["value"], default_region=request.app[REGION])
    except InvalidIdentifier as exc:
        raise ValidationError("value", exc.reason, f"invalid {body['type']}: {exc.reason}") from None
    graph = request.app[GRAPH]
    try:
        result = await asyncio.to_thread(graph.unmerge, request.match_info["oneid"], body["type"], value,
                                         actor=f"api:{key.name}")
    except (ProfileNotFoundError, NotLinkedError) as exc:
        raise _not_found(str(exc)) from None
    except IdentityError as exc:
        raise ValidationError("value", "cannot_unmerge", str(exc)) from None
    producer, topics = request.app.get(PRODUCER), request.app.get(TOPICS)
    if producer is not None and topics is not None:  # the lake's identities follow the split
        await unmerges.announce_async(producer, topics, graph, result)
    return web.json_response({"oneid": result.oneid, "new_oneid": result.new_oneid,
                              "identifiers": result.identifiers, "message_ids": result.message_ids},
                             dumps=dumps_strict)


async def export_profile(request: web.Request) -> web.Response:
    """Subject access (admin): everything held on the person, the lake's rows included; audited."""
    key = await require(request, "admin")
    graph, store = request.app[GRAPH], request.app.get(PROFILES)
    lake = request.app.get(LAKE_ROOT)
    if store is None:
        raise _not_found("no profile store")
    document = await asyncio.to_thread(access.subject_access, request.match_info["oneid"], graph, store, lake)
    survivor = document["oneid"] if document else request.match_info["oneid"]
    await audited(request, key, survivor, found=document is not None)
    if document is None:
        raise _not_found("nothing is held on this OneID")
    return web.json_response(document, dumps=lambda v: json.dumps(v, allow_nan=False, default=str))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/identities/{type}/{value}", get_identity)
    app.router.add_get("/v1/profiles/{oneid}", get_profile)
    app.router.add_get("/v1/profiles/{oneid}/triggers", get_triggers)
    app.router.add_delete("/v1/profiles/{oneid}", delete_profile)
    app.router.add_post("/v1/profiles/{oneid}/unmerge", unmerge)
    app.router.add_get("/v1/profiles/{oneid}/export", export_profile)
