"""The contracts: Avro schemas (.avsc) and the single-object codec."""

from schemas.codec import (
    DEAD_LETTER,
    EVENT,
    IDENTITY_MERGE,
    IDENTITY_REJECTION,
    SEGMENT_CHANGE,
    TRIGGER,
    SchemaRegistry,
    default_registry,
)
from schemas.exceptions import DecodeError, EncodeError, UnknownSchemaError

__all__ = [
    "DEAD_LETTER",
    "EVENT",
    "IDENTITY_MERGE",
    "IDENTITY_REJECTION",
    "SEGMENT_CHANGE",
    "TRIGGER",
    "DecodeError",
    "EncodeError",
    "SchemaRegistry",
    "UnknownSchemaError",
    "default_registry",
]
