"""Reading a request body: size limits, gzip, JSON, each failure a ValidationError naming 'body'.

Parsing is two-speed. orjson reads the normal body (about twice as fast as the stdlib) and refuses
what no record may carry: lone surrogates, NaN/Infinity, numbers beyond double range, nesting past
1,024. Only then, or when the body holds a run of 19+ digits (orjson silently reads integer
literals beyond 64 bits as floats), the stdlib parser reads it carefully: such numbers become
:class:`~connectors.jsonsafe.BadNumber` and bytes that are not UTF-8 lone surrogates, so only the
message holding them is rejected, by validation, naming the field. A body even that cannot read is
refused as a whole: ``malformed_json`` or ``too_deep``.
"""

from __future__ import annotations

import json
import math
import zlib

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from connectors.jsonsafe import INT64_MAX, INT64_MIN, BadNumber
from touchstream.errors import ValidationError

GZIP = ("gzip", "x-gzip")
_IDENTITY = ("", "identity")
_BOM = b"\xef\xbb\xbf"
# orjson reads integers beyond 64 bits as floats, silently: below -2**63 that is already 19 digits.
# Any run of 19 digits (in a string too: rare, and only slower) takes the careful path.
_LONG_DIGITS = b"0" * 19
_DIGITS_AS_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))


async def read_body(request: web.Request) -> tuple[bytes, str]:
    """The raw body as sent and its Content-Encoding; an unknown encoding or an over-large body
    (aiohttp's ``client_max_size``) is a ValidationError, before any work is done on it."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in GZIP and encoding not in _IDENTITY:
        raise ValidationError("body", "unsupported_encoding",
                              f"Content-Encoding {encoding[:40]!r} is not supported")
    try:
        return await request.read(), encoding
    except web.HTTPRequestEntityTooLarge:
        raise ValidationError("body", "too_large", "the body is larger than the server accepts") from None
    except RequestPayloadError:  # cut short, bad chunking, or a body the HTTP layer could not inflate
        raise ValidationError("body", "unreadable_body", "the body could not be read") from None


def decode_body(raw: bytes, encoding: str, max_bytes: int) -> tuple[object, int]:
    """The parsed JSON body and its decompressed size (CPU work: callers run it off the loop)."""
    if encoding in GZIP and raw[:2] == b"\x1f\x8b":
        # Inflate here, bounded, unless the HTTP layer already did (then client_max_size bounded it).
        raw = _gunzip(raw, max_bytes)
    if len(raw) > max_bytes:
        raise ValidationError("body", "too_large", f"body is {len(raw)} bytes, the limit is {max_bytes}")
    return parse_json(raw), len(raw)


async def read_json(request: web.Request, max_bytes: int) -> tuple[object, int]:
    """The parsed JSON body and its decompressed size, on the loop (small bodies: the admin API)."""
    raw, encoding = await read_body(request)
    return decode_body(raw, encoding, max_bytes)


def parse_json(raw: bytes) -> object:
    """JSON text to Python values, never raising anything but ValidationError (see the module)."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _careful_parse(raw)


def _careful_parse(raw: bytes) -> object:
    text = raw.decode("utf-8", "surrogateescape")  # bad bytes -> lone surrogates -> bad_unicode
    try:
        return _CAREFUL.decode(text)
    except RecursionError:
        raise ValidationError("body", "too_deep", "the body nests too deeply to be read") from None
    except json.JSONDecodeError as exc:
        message = f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise ValidationError("body", "malformed_json", message) from None


def _parse_int(text: str) -> int | BadNumber:
    if len(text) > 20:  # before int(): Python refuses 4,300+ digits with a ValueError
        return BadNumber(text)
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else BadNumber(text)


def _parse_float(text: str) -> float | BadNumber:
    value = float(text)
    return value if math.isfinite(value) else BadNumber(text)


_CAREFUL = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=BadNumber)


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
