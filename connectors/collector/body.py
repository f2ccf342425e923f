"""Reading a request body: size limits, gzip, JSON, each failure a ValidationError naming 'body'."""

from __future__ import annotations

import json
import zlib

from aiohttp import web

from touchstream.errors import ValidationError


async def read_json(request: web.Request, max_bytes: int) -> tuple[object, int]:
    """The parsed JSON body and its decompressed size; gzip bodies are accepted (Content-Encoding)."""
    raw = await request.read()
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        # Inflate here, bounded, unless the HTTP layer already did (then client_max_size bounded it).
        if raw[:2] == b"\x1f\x8b":
            raw = _gunzip(raw, max_bytes)
    elif encoding not in ("", "identity"):
        raise ValidationError("body", "unsupported_encoding",
                              f"Content-Encoding {encoding!r} is not supported")
    if len(raw) > max_bytes:
        raise ValidationError("body", "too_large", f"body is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        return json.loads(raw), len(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("body", "malformed_json", f"body is not valid JSON: {exc}") from None


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress at most max_bytes + 1 bytes, so a gzip bomb costs nothing."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise ValidationError("body", "malformed_gzip", f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes or decompressor.unconsumed_tail:
        raise ValidationError("body", "too_large", f"decompressed body exceeds {max_bytes} bytes")
    return out
