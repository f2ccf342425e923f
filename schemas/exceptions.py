"""Codec errors: both are :class:`~touchstream.errors.SchemaError`, with a machine ``reason``.

The ``reason`` codes let a dead-letter writer record *why* without parsing messages. Messages
never quote record values (they may be PII); they name the schema, the field or the byte offset.
"""

from __future__ import annotations

from touchstream.errors import SchemaError


class DecodeError(SchemaError):
    """Bytes that are not a single-object record of a known schema.

    ``reason`` is one of: ``bad_marker``, ``truncated``, ``unknown_fingerprint``,
    ``unexpected_schema``, ``bad_body``, ``trailing_bytes``.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class EncodeError(SchemaError):
    """A record that does not fit its schema (wrong type, missing required field).

    ``reason`` is ``invalid_record``.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class UnknownSchemaError(SchemaError):
    """A schema name the registry does not know (a programming error, not bad data).

    ``reason`` is ``unknown_schema``.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
