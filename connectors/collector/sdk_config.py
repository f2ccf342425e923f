"""The documents the browser SDKs fetch when they load, served by the collector itself.

A site then needs nothing from Segment or RudderStack:

- analytics.js (``@segment/analytics-next``) loaded with ``cdnURL`` (or the snippet's ``_cdn``) set
  to the collector fetches ``GET /v1/projects/{writeKey}/settings``. Its ``Segment.io``
  integration is the only one and points ``apiHost`` back at this collector, so every call goes
  to ``/v1/{t,p,i,g,a,s}`` (or ``/v1/b`` when the page asks for batching). Remote metrics are off
  (``sampleRate`` 0) and no remote plugin, middleware or destination is named, so the SDK loads
  no other bundle.
- RudderStack's v3 SDK loaded with ``configUrl`` set to the collector fetches
  ``GET /sourceConfig/?writeKey=...`` (also with the key as Basic auth). The source has no
  device-mode destinations and error and metrics reporting off, so it posts only to the data
  plane URL it was given (``/v1/{type}``, ``/v1/batch``, ``/beacon/v1/batch``).

Both answer only for a genuine write key, on an allowed origin (connectors/collector/cors.py).
The collector's address comes from the request (``Host``; ``X-Forwarded-Proto`` when a TLS proxy
sits in front), so the documents are cached per host, scheme and origin (``Vary``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connectors.collector import cors
from connectors.collector.auth import presented_write_key
from connectors.collector.routes import dumps_strict, write_key

#: how long a browser or CDN may reuse a document: a revoked key stops loading within it
CACHE_S = 300
_SCHEMES = ("http", "https")


def public_base(request: web.Request) -> tuple[str, str]:
    """(scheme, host[:port]) under which pages reach this collector."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in _SCHEMES else request.scheme
    return scheme, request.host


def segment_settings_document(write_key_text: str, scheme: str, host: str) -> dict[str, Any]:
    """analytics.js's source settings (its CDNSettings): the Segment.io integration sends here."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key_text,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            },
        },
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
        "edgeFunction": {},
    }


def rudder_source_config(key_id: str, name: str) -> dict[str, Any]:
    """RudderStack's source config: an enabled source, no destinations, no SDK telemetry."""
    return {
        "isHosted": False,
        "source": {
            "id": key_id,
            "name": name,
            "workspaceId": "touchstream",
            "enabled": True,
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        },
    }


async def segment_settings(request: web.Request) -> web.Response:
    """GET /v1/projects/{writeKey}/settings: what analytics.js loads before its first call."""
    presented = request.match_info["writeKey"]
    await write_key(request, presented, "writeKey")
    scheme, host = public_base(request)
    return _document(segment_settings_document(presented, scheme, host))


async def source_config(request: web.Request) -> web.Response:
    """GET /sourceConfig/: what RudderStack's JavaScript SDK loads before its first call."""
    key = await write_key(request, presented_write_key(request), "writeKey")
    return _document(rudder_source_config(key.key_id, key.name))


def _document(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, dumps=dumps_strict, headers={
        "Cache-Control": f"private, max-age={CACHE_S}", "Vary": "Origin, X-Forwarded-Proto"})


def add_routes(app: web.Application) -> None:
    """The SDK documents, each with its CORS preflight (RudderStack sends Authorization: preflighted)."""
    for path, handler, name in (
        ("/v1/projects/{writeKey}/settings", segment_settings, "segment_settings"),
        ("/sourceConfig", source_config, "rudder_source_config"),
        ("/sourceConfig/", source_config, "rudder_source_config_slash"),
    ):
        resource = app.router.add_resource(path, name=name)
        resource.add_route("GET", handler)
        resource.add_route("HEAD", handler)  # RudderStack's ad-blocker probe
        resource.add_route("OPTIONS", cors.preflight("GET, HEAD"))
