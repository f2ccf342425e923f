"""The root of every error the project raises on purpose.

    TouchstreamError
     ├── ConfigError            a setting or config file is wrong; says which
     ├── ValidationError        an incoming event is malformed; names the field (-> HTTP 400)
     ├── SchemaError            bytes that are not a known Avro single-object record
     └── StackError             the local Kafka/Redis stack could not be reached or started
"""

from __future__ import annotations


class TouchstreamError(Exception):
    """Root of the project's errors."""


class ConfigError(TouchstreamError):
    """A setting or configuration file is invalid."""


class ValidationError(TouchstreamError):
    """An incoming event breaks the contract; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str, message: str | None = None) -> None:
        self.field = field
        self.reason = reason
        super().__init__(message or f"{field}: {reason}")


class SchemaError(TouchstreamError):
    """Bytes that cannot be decoded as a record of a known schema."""


class StackError(TouchstreamError):
    """The Kafka/Redis stack is not reachable."""
