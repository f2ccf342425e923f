"""CORS for the tracking routes: web pages of the origins a write key allows may send to it.

The decision (and why):

- **Preflights are answered for any origin**, with the methods and headers the SDKs send. A
  preflight carries no credentials: analytics.js and RudderStack put the write key in the
  Authorization header or the body of the real request, never in the OPTIONS one, so no key can
  be consulted there. Looking the origin up across every key instead would tell any page which
  sites are customers and cost a Redis read per preflight, and it would protect nothing: CORS
  guards what a page may *read*, not what it may *send*. ``navigator.sendBeacon`` and
  ``text/plain`` posts are never preflighted, so the origin has to be enforced on the real request
  anyway. Segment's and RudderStack's own collectors answer preflights the same way.
- **The real request is where the origin is enforced**: once its write key is verified, a request
  carrying an ``Origin`` not allowed for that key is refused with a 403 naming ``Origin`` before
  anything is read or produced, and counted (``touchstream_origins_refused_total``). Only an allowed
  origin is echoed in ``Access-Control-Allow-Origin`` (with ``Vary: Origin``, and ``Retry-After``
  exposed so the SDKs can honour a 429). A key created without ``--origin`` is a server key and
  refuses every browser; ``*`` allows every site and is only ever stored when asked for.
- Requests without an ``Origin`` (server SDKs, curl) are not browsers' and are not checked: the
  allow-list keeps *other sites' visitors* from using a key, it does not authenticate anyone.
- The read and admin API answer no preflight and echo no origin: they stay closed to pages.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from touchstream import metrics
from touchstream.keys import ApiKey

#: headers the browser SDKs send: analytics.js (Authorization, X-Retry-Count), RudderStack v3
#: (AnonymousId, SentAt, Rsa-*); Content-Type because application/json is not CORS-safelisted
ALLOWED_HEADERS = ", ".join((
    "Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count", "AnonymousId", "SentAt",
    "Rsa-Recovered", "Rsa-Retry-Attempt", "Rsa-Since-Last-Attempt", "Rsa-Since-First-Attempt",
    "Rsa-Retry-Reason",
))
#: response headers a page may read: the SDKs wait Retry-After out on a 429 or 503
EXPOSED_HEADERS = "Retry-After"
#: seconds a browser may reuse a preflight (Chromium caps this at 7,200)
MAX_AGE_S = 7200

ALLOWED_ORIGIN = web.RequestKey("allowed_origin", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def enforce_origin(request: web.Request, key: ApiKey) -> None:
    """Let a page of an allowed origin use ``key``; refuse (403, counted) one that is not allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if key.allows_origin(origin):
        request[ALLOWED_ORIGIN] = origin
        return
    metrics.ORIGINS_REFUSED.labels(key.name).inc()
    message = ("this write key is not allowed on this site: add the site's origin to the key "
               "(touchstream keys create --scope write --origin https://your.site)")
    raise web.HTTPForbidden(
        text=_error_body("Origin", "origin_not_allowed", message), content_type="application/json")


def preflight(methods: str) -> Handler:
    """An OPTIONS handler answering CORS preflights for a tracking route that takes ``methods``."""

    async def answer(request: web.Request) -> web.Response:
        headers = {"Allow": f"{methods}, OPTIONS", "Vary": "Origin"}
        origin = request.headers.get("Origin")
        if origin is not None:
            headers.update({
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(MAX_AGE_S),
            })
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                # Chromium asks before a public site may reach a collector on a private network
                headers["Access-Control-Allow-Private-Network"] = "true"
        return web.Response(status=204, headers=headers)

    return answer


def cors_headers() -> Middleware:
    """Middleware: echo the origin a tracking handler allowed, on its answer or its error."""

    @web.middleware
    async def add_cors_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _decorate(request, exc.headers)
            raise
        _decorate(request, response.headers)
        return response

    return add_cors_headers


def _decorate(request: web.Request, headers: MutableMapping[str, str]) -> None:
    origin = request.get(ALLOWED_ORIGIN)
    if origin is None:
        return
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    vary = headers.get("Vary")
    if vary is None:
        headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        headers["Vary"] = f"{vary}, Origin"


def _error_body(field: str, reason: str, message: str) -> str:
    return json.dumps({"success": False, "error": {"field": field, "reason": reason, "message": message}})
