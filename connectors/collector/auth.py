"""Credentials from requests: Segment's write key as the HTTP Basic username; API keys as Bearer."""

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


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def unauthorized(reason: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=f'{{"success": false, "error": {{"field": "Authorization", "reason": "{reason}"}}}}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Basic realm="touchstream"'},
    )
