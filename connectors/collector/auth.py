"""Credentials from requests: Segment's write key as the HTTP Basic username; API keys as Bearer.

Browser SDKs may carry the write key elsewhere: analytics.js in the body's ``writeKey`` (a
``text/plain`` post needs no preflight, an Authorization header would), RudderStack's beacon in
the URL's ``?writeKey=`` (``navigator.sendBeacon`` cannot set headers).
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web


def basic_username(request: web.Request) -> str | None:
    """The Basic-auth username (Segment SDKs send ``writeKey:`` there)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def presented_write_key(request: web.Request) -> str | None:
    """The write key of the Authorization header, else of the URL's ``writeKey`` (None: look in the body)."""
    return basic_username(request) or request.query.get("writeKey") or None


def body_write_key(body: object) -> str | None:
    """The ``writeKey`` of a JSON body (analytics.js sends it there), when it is a string."""
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def unauthorized(reason: str, field: str = "Authorization") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=f'{{"success": false, "error": {{"field": "{field}", "reason": "{reason}"}}}}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Basic realm="touchstream"'},
    )
