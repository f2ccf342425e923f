"""Stripe-style signatures: ``X-Touchstream-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is HMAC-SHA256 of ``f"{t}.{body}"`` under the endpoint's secret. Signing the timestamp
with the body lets a receiver refuse replays older than a tolerance; each attempt is signed
afresh, so a retry hours later still verifies. Receivers use :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Touchstream-Signature"
IDEMPOTENCY_HEADER = "X-Touchstream-Idempotency-Key"
ATTEMPT_HEADER = "X-Touchstream-Attempt"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    mac = hmac.new(_as_bytes(secret), f"{timestamp}.".encode(), hashlib.sha256)
    mac.update(_as_bytes(body))
    return mac.hexdigest()


def sign(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body`` sent now (or at ``timestamp``, unix seconds)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={compute_signature(secret, t, body)}"


def verify_signature(secret: str | bytes, header: str | None, body: str | bytes,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, *, now: float | None = None) -> bool:
    """True when ``header`` signs exactly ``body`` under ``secret`` within ``tolerance_s`` of now.

    Any ``v1`` entry may match (a sender rotating secrets can send several); a malformed header
    is simply not valid. Comparison is constant-time (:func:`hmac.compare_digest`).
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = compute_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected.encode(), c.encode("utf-8", "replace")) for c in candidates)
