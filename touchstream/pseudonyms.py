"""Keyed pseudonyms of identifiers: HMAC-SHA256 of ``type:value`` under the deployment's secret.

Why keyed: OneIDs and identifier hashes leave Redis (webhooks, topics, the lake, audits) and
suppression entries outlive an erasure. An unkeyed hash of a phone number is a lookup away from
the number (every Chinese mobile number is ~2.6 CPU-hours of SHA-256); an HMAC cannot be computed,
nor therefore searched, without the secret.

One pseudonym per identifier (an email and a user_id that read the same get different ones). It is
the identifier's ``value_hash`` in rejections, moves and audits, its suppression entry after an
erasure, the name of its frequency-guard set, and the seed of the OneID it creates
(identity/graph_lib.lua ``new_id``: "o_" + 16 hex of sha1(pseudonym)).

Rotation (README "Pseudonym secret"): the new secret in ``TOUCHSTREAM_PSEUDONYM_SECRET``, the old
one in ``TOUCHSTREAM_PSEUDONYM_SECRET_PREVIOUS``. New hashes use the new secret; lookups of what
was stored under the old one (suppression entries, an erasure's search of rejections and dead
letters) try both. OneIDs already issued stay. The previous secret can go once the erasure
suppression window has passed since the rotation: no entry written under it is left.
"""

from __future__ import annotations

import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from touchstream.errors import ConfigError

if TYPE_CHECKING:
    from touchstream.settings import Settings

#: Shortest secret accepted, characters: 32 hex characters carry 128 bits.
MIN_SECRET_CHARS = 32


def generate_secret() -> str:
    """A fresh secret: 256 random bits as hex (what `make up` writes for the local stack)."""
    return secrets.token_hex(32)


def _key(secret: str, name: str) -> bytes:
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"{name} must be at least {MIN_SECRET_CHARS} characters "
                          f"(e.g. `openssl rand -hex 32`), got {len(secret)}")
    return secret.encode("utf-8")


def _hmac_hex(key: bytes, type_: str, value: object) -> str:
    """Total: a lone surrogate or a value that is no string still gets a pseudonym (a rejection
    record of junk input needs one)."""
    text = value if isinstance(value, str) else repr(value)
    return hmac.digest(key, f"{type_}:{text}".encode("utf-8", "surrogatepass"), "sha256").hex()


class Pseudonyms:
    """The pseudonyms of one deployment: ``of`` under the current secret, ``every`` under the
    current and the previous one (during a rotation)."""

    def __init__(self, secret: str, previous: str = "") -> None:
        self._key = _key(secret, "TOUCHSTREAM_PSEUDONYM_SECRET")
        self._previous = _key(previous, "TOUCHSTREAM_PSEUDONYM_SECRET_PREVIOUS") if previous else None
        if self._previous == self._key:
            self._previous = None
        self.of = lru_cache(maxsize=1 << 16)(self._of)

    def _of(self, type_: str, value: str) -> str:
        """64 hex: the identifier's pseudonym under the current secret (cached: values repeat)."""
        return _hmac_hex(self._key, type_, value)

    def of_any(self, type_: str, value: object) -> str:
        """:meth:`of` without the cache, for values that may be junk and must not evict hot ones."""
        return _hmac_hex(self._key, type_, value)

    def previous_of(self, type_: str, value: object) -> str | None:
        """The pseudonym under the previous secret while rotating, else None."""
        return None if self._previous is None else _hmac_hex(self._previous, type_, value)

    def every(self, type_: str, value: object) -> tuple[str, ...]:
        """Every pseudonym the identifier may be stored under: current first, then previous."""
        old = self.previous_of(type_, value)
        current = self.of_any(type_, value)
        return (current,) if old is None else (current, old)

    @property
    def rotating(self) -> bool:
        """A previous secret is set: lookups try both."""
        return self._previous is not None

    def __repr__(self) -> str:
        return f"Pseudonyms(rotating={self.rotating})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonyms:
        """From ``pseudonym_secret``, or the file ``pseudonym_secret_file`` names when it is empty.
        :class:`ConfigError` when there is neither: a default secret would be no secret."""
        secret = settings.pseudonym_secret
        if not secret:
            path = Path(settings.pseudonym_secret_file)
            try:
                secret = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise ConfigError(
                    "no pseudonym secret: set TOUCHSTREAM_PSEUDONYM_SECRET (e.g. `openssl rand -hex 32`) "
                    f"or TOUCHSTREAM_PSEUDONYM_SECRET_FILE; `make up` writes {path} for the local stack"
                ) from None
        return cls(secret, settings.pseudonym_secret_previous)


def ensure_secret_file(path: Path) -> bool:
    """Write a fresh secret to ``path`` (mode 0600) unless it exists; True when written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(generate_secret() + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)  # fails when another process wrote it first: theirs stays
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True
