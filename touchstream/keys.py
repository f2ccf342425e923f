"""API keys: created and revoked by the CLI, stored hashed in Redis, checked in constant time.

A key reads ``tsk_<id>_<secret>``. Redis holds, per id, the scope, name and SHA-256 of the
secret; the secret itself is shown once, at creation, and never stored or logged. Looking a key
up by its (public) id and then comparing digests with :func:`hmac.compare_digest` keeps the
check constant-time in the secret.

Scopes: ``write`` (collector), ``read`` (profile and identity reads), ``admin`` (deletion,
unmerge; also allowed wherever read is). A write key may carry its own rate limit (events per
second and burst); without one the collector's defaults apply (connectors/ratelimit.py).

A write key used from web pages lists the origins allowed to use it (``--origin
https://shop.example.cn``, several allowed, ``*`` only when asked for): a browser request whose
``Origin`` is not listed is refused (connectors/collector/cors.py). A key with no origins is a
server key: browsers cannot use it at all. Origins are kept in their serialised form
(``scheme://host[:port]``, lower case, default port dropped), as browsers send them.

Trust: anyone can copy a browser key out of a page, so a write key says whether its events are
``trusted`` and which identifier types it may assert at all (``assertable``). A server key (no origins) is
trusted and may assert every type; a browser key is untrusted and may assert
:data:`BROWSER_ASSERTABLE` unless created otherwise (``--trusted``, ``--assert TYPE``). The edge
drops the other types from identity (connectors/validation.py) and stamps each record with the
key's trust; the graph never lets an untrusted record merge two people (identity/graph.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

SCOPES = ("write", "read", "admin")
_KEY_PREFIX = "tsk_"
#: the origin that allows every site: only when asked for explicitly
ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: What a browser key may assert unless created with ``--assert``: the anonymous types, email and
#: phone (traits a visitor types in) and user_id (analytics.js identify); all linked untrusted.
#: a page's own ids and what a visitor types into a form; a login id (user_id) only when the key
#: is created with ``--assert user_id`` (anyone can copy a browser key and claim any login)
BROWSER_ASSERTABLE: tuple[str, ...] = ("anonymous_id", "device_id", "email", "phone")


@dataclass(frozen=True)
class ApiKey:
    """What is known of a key without its secret."""

    key_id: str
    name: str
    scope: str
    created_at: float
    revoked: bool = False
    rate: int | None = None
    burst: int | None = None
    origins: tuple[str, ...] = ()
    #: its events may merge people and override untrusted links (server keys: True)
    trusted: bool = True
    #: identifier types its events may assert (None: every type)
    assertable: tuple[str, ...] | None = None

    def allows(self, scope: str) -> bool:
        return not self.revoked and (self.scope == scope or (self.scope == "admin" and scope == "read"))

    def allows_origin(self, origin: str) -> bool:
        """Whether a page of ``origin`` (the request's Origin header) may use this key."""
        return ANY_ORIGIN in self.origins or origin.lower() in self.origins


def normalise_origin(origin: str) -> str:
    """``origin`` in the form browsers send (``https://shop.example.cn``), or ValueError saying why.

    ``*`` stays ``*``; a trailing slash is dropped; a path, query, user or non-HTTP scheme is refused.
    """
    text = origin.strip()
    if text == ANY_ORIGIN:
        return ANY_ORIGIN
    parts = urlsplit(text.rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"origin {origin!r}: bad port") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"origin {origin!r}: expected scheme://host[:port] with http or https, or *")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"origin {origin!r}: an origin has no path, query or user, only scheme://host[:port]")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not key.startswith(_KEY_PREFIX):
        return None
    parts = key[len(_KEY_PREFIX):].split("_", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


class KeyStore:
    """Synchronous key administration (CLI)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._hash = f"{prefix}apikeys"

    def create(self, scope: str, name: str, *, rate: int | None = None, burst: int | None = None,
               origins: tuple[str, ...] = (), trusted: bool | None = None,
               assertable: tuple[str, ...] | None = None) -> str:
        """Create a key and return it; the only time the secret exists outside the caller.

        ``rate`` (events/s) and ``burst`` (events) override the collector's default rate limit;
        ``origins`` are the web origins whose pages may use a write key (none: a server key);
        ``trusted`` and ``assertable`` default by origins (see the module docstring).
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        for label, value in (("rate", rate), ("burst", burst)):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1")
        if (origins or trusted is not None or assertable is not None) and scope != "write":
            raise ValueError("origins, trust and assertable types apply to write keys only")
        allowed = sorted({normalise_origin(origin) for origin in origins})
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24).replace("_", "-")
        record: dict[str, object] = {"name": name, "scope": scope, "digest": _digest(secret),
                                     "created_at": time.time(), "revoked": False}
        if rate is not None:
            record["rate"] = rate
        if burst is not None:
            record["burst"] = burst
        if allowed:
            record["origins"] = allowed
        if scope == "write":
            record["trusted"] = (not allowed) if trusted is None else trusted
            if assertable is not None:
                record["assertable"] = sorted(set(assertable))
            elif allowed:
                record["assertable"] = list(BROWSER_ASSERTABLE)
        if not self._redis.hsetnx(self._hash, key_id, json.dumps(record, allow_nan=False)):
            # id collision: astronomically rare, just draw again
            return self.create(scope, name, rate=rate, burst=burst, origins=origins, trusted=trusted,
                               assertable=assertable)
        return f"{_KEY_PREFIX}{key_id}_{secret}"

    def revoke(self, key_or_id: str) -> bool:
        """Revoke by full key or by id; False when no such key exists."""
        parts = split_key(key_or_id)
        key_id = parts[0] if parts else key_or_id
        raw = self._redis.hget(self._hash, key_id)
        if raw is None:
            return False
        record = json.loads(raw)
        record["revoked"] = True
        self._redis.hset(self._hash, key_id, json.dumps(record, allow_nan=False))
        return True

    def list(self) -> list[ApiKey]:
        return sorted(
            (_to_api_key(k.decode() if isinstance(k, bytes) else k, json.loads(v))
             for k, v in self._redis.hgetall(self._hash).items()),
            key=lambda k: k.created_at,
        )


class KeyChecker:
    """Asynchronous key verification for the HTTP server, with a short positive cache.

    A revoked key stops working within ``cache_s`` seconds (0 disables the cache).
    """

    def __init__(self, client: aioredis.Redis, prefix: str, cache_s: float = 5.0) -> None:
        self._redis = client
        self._hash = f"{prefix}apikeys"
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey]] = {}

    async def check(self, key: str | None) -> ApiKey | None:
        """The key's record when the key is genuine and not revoked, else None."""
        if not key:
            return None
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        raw = await self._redis.hget(self._hash, key_id)
        if raw is None:
            hmac.compare_digest(_digest(secret), _digest("x"))  # same work on a miss
            return None
        record = json.loads(raw)
        if not hmac.compare_digest(_digest(secret), record["digest"]) or record.get("revoked"):
            return None
        api_key = _to_api_key(key_id, record)
        if self._cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, api_key)
        return api_key


def _to_api_key(key_id: str, record: dict) -> ApiKey:
    origins = tuple(record.get("origins", ()))
    # keys stored before trust existed: a browser key is untrusted with the browser defaults
    assertable = record.get("assertable", BROWSER_ASSERTABLE if origins else None)
    return ApiKey(key_id, record["name"], record["scope"], record["created_at"], bool(record.get("revoked")),
                  record.get("rate"), record.get("burst"), origins, bool(record.get("trusted", not origins)),
                  None if assertable is None else tuple(assertable))
