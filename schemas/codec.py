"""Avro single-object encoding of the platform's records, with schema evolution on read.

Every Kafka value is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form + the Avro binary body (Avro spec, "Single-object encoding").
The fingerprint lets a reader find the exact writer schema (current or pinned under
``history/<file stem>/``) and resolve it to today's reader schema, so producers and consumers can be
upgraded one at a time.

A schema is named by its record's short name (``Event``, ``DeadLetter``, ...); its file stem
(``event``) and full name (``io.touchstream.Event``) are accepted too. Everything is parsed once
when the registry is built; :meth:`SchemaRegistry.encoder` / :meth:`SchemaRegistry.decoder`
return closures for hot loops.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import SchemaParseException, UnknownType, to_parsing_canonical_form
from fastavro.schema import fingerprint as _fingerprint_hex

from schemas.exceptions import DecodeError, EncodeError, UnknownSchemaError
from touchstream.errors import ConfigError

log = logging.getLogger(__name__)

MAGIC = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE
SCHEMA_DIR = Path(__file__).resolve().parent
CURRENT = "current"

# Registry names of the platform's records (the records' short names).
EVENT = "Event"
DEAD_LETTER = "DeadLetter"
IDENTITY_MERGE = "IdentityMerge"
IDENTITY_REJECTION = "IdentityRejection"
TRIGGER = "Trigger"
SEGMENT_CHANGE = "SegmentChange"

_T = TypeVar("_T")
Record = dict[str, Any]
Encoder = Callable[[Mapping[str, Any]], bytes]
Decoder = Callable[[bytes], Record]


def fingerprint(schema: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of ``schema``'s Parsing Canonical Form, little-endian.

    fastavro already returns the hex of the little-endian bytes (as Java's SchemaNormalization and
    the single-object header do); the spec vector ``"int"`` -> ``8f5c393f1ad57572`` is a unit test.
    """
    return bytes.fromhex(_fingerprint_hex(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaVersion:
    """One known writer schema: today's (``version == "current"``) or a pinned historic one.

    ``name`` is the registry name of the schema it belongs to (today's record short name).
    """

    name: str
    version: str
    path: Path
    raw: dict[str, Any]
    parsed: dict[str, Any]
    fingerprint: bytes

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    @property
    def fullname(self) -> str:
        return str(self.parsed["name"])


def _version_key(path: Path) -> tuple[int, str]:
    match = re.fullmatch(r"v(\d+)", path.stem)
    return (int(match.group(1)) if match else 1 << 30, path.stem)


def _load(version: str, path: Path, name: str | None = None) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = parse_schema(raw)
        fp = fingerprint(parsed)
    except (OSError, ValueError, TypeError, KeyError, SchemaParseException, UnknownType) as exc:
        raise ConfigError(f"schema file {path} is not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ConfigError(f"schema file {path} must hold one Avro record")
    short = str(parsed["name"]).rpartition(".")[2]
    return SchemaVersion(name or short, version, path, raw, parsed, fp)


def _field_of(exc: Exception) -> str:
    """The field fastavro names in its message, without quoting the offending value (PII)."""
    match = re.search(r"(?:on field|no default for) (\S+)", str(exc))
    return f" (field {match.group(1)})" if match else ""


class SchemaRegistry:
    """Current reader schemas by name and every known writer schema by fingerprint.

    Built from ``directory/<stem>.avsc`` (today's schemas, one record each) and
    ``directory/history/<stem>/*.avsc`` (pinned earlier versions, e.g. ``v1.avsc``).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._current: dict[str, SchemaVersion] = {}
        self._history: dict[str, list[SchemaVersion]] = {}
        self._aliases: dict[str, str] = {}  # short name, full name, file stem -> short name
        for path in sorted(self.directory.glob("*.avsc")):
            version = _load(CURRENT, path)
            if version.name in self._current:
                raise ConfigError(f"{path} and {self._current[version.name].path} both define {version.name}")
            self._current[version.name] = version
            for alias in (version.name, version.fullname, path.stem):
                self._aliases[alias] = version.name
        if not self._current:
            raise ConfigError(f"no .avsc schemas in {self.directory}")
        self._current = dict(sorted(self._current.items()))
        history_root = self.directory / "history"
        for folder in sorted(p for p in history_root.glob("*") if p.is_dir()):
            if folder.name not in self._aliases:
                raise ConfigError(f"history of {folder.name!r} but no {folder.name}.avsc in {self.directory}")
            name = self._aliases[folder.name]
            paths = sorted(folder.glob("*.avsc"), key=_version_key)
            self._history[name] = [_load(path.stem, path, name) for path in paths]
        # header -> (name, writer schema, reader schema or None when writer == reader)
        self._by_header: dict[bytes, tuple[str, dict[str, Any], dict[str, Any] | None]] = {}
        for name in self._current:
            for version in self.versions(name):  # current last: it wins a fingerprint tie
                known = self._by_header.get(version.header)
                if known is not None and known[0] != name:
                    raise ConfigError(f"{version.path} has the same fingerprint as schema {known[0]!r}")
                current = self._current[name]
                reader = None if version.fingerprint == current.fingerprint else current.parsed
                self._by_header[version.header] = (name, version.parsed, reader)
        self._oneid_splice = self._oneid_splice_header()
        log.debug("schema registry %s: %d schemas, %d writer fingerprints",
                  self.directory, len(self._current), len(self._by_header))

    def _oneid_splice_header(self) -> bytes | None:
        """Today's Event header when its last field is ``oneid: ["null", "string"]``, else None."""
        event = self._current.get(EVENT)
        if event is None:
            return None
        last = event.parsed["fields"][-1]
        return event.header if last["name"] == "oneid" and last["type"] == ["null", "string"] else None

    # -- what is known -----------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Registry names (record short names) of today's schemas, sorted."""
        return tuple(self._current)

    def canonical(self, name: str) -> str:
        """The registry name for a short name, full name or file stem; :class:`UnknownSchemaError`."""
        try:
            return self._aliases[name]
        except (KeyError, TypeError):
            raise UnknownSchemaError(
                "unknown_schema", f"unknown schema {name!r}; known: {', '.join(self._current)}"
            ) from None

    def current(self, name: str) -> SchemaVersion:
        """Today's schema of ``name`` (any accepted spelling); :class:`UnknownSchemaError` if none."""
        return self._current[self.canonical(name)]

    def schema(self, name: str) -> dict[str, Any]:
        """Today's schema of ``name`` as plain JSON data (a fresh copy, safe to modify)."""
        return json.loads(json.dumps(self.current(name).raw))

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte fingerprint today's writers put in the header of ``name`` records."""
        return self.current(name).fingerprint

    def history(self, name: str) -> list[SchemaVersion]:
        """Pinned earlier versions of ``name``, oldest first (may be empty)."""
        return list(self._history.get(self.canonical(name), ()))

    def versions(self, name: str) -> list[SchemaVersion]:
        """Every writer schema of ``name``: the pinned history, oldest first, then today's."""
        return [*self.history(name), self.current(name)]

    def name_of(self, data: bytes) -> str | None:
        """The schema name announced by ``data``'s header, or None if it is not a known header."""
        entry = _lookup(self._by_header, data)
        return entry[0] if entry else None

    # -- encoding ----------------------------------------------------------------------------

    def encoder(self, name: str) -> Encoder:
        """A function record -> single-object bytes for today's ``name`` schema, parsed once.

        Missing fields take their schema default; keys not in the schema are ignored; a record
        that does not fit raises :class:`EncodeError` naming the field (never the value).
        """
        version = self.current(name)
        header, parsed, name = version.header, version.parsed, version.name

        def encode(record: Mapping[str, Any]) -> bytes:
            out = BytesIO()
            out.write(header)
            try:
                schemaless_writer(out, parsed, record)
            except Exception as exc:  # fastavro raises ValueError/TypeError/AttributeError/...
                raise EncodeError(
                    "invalid_record",
                    f"record does not fit schema {name!r}{_field_of(exc)}: {type(exc).__name__}",
                ) from None
            return out.getvalue()

        return encode

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object bytes of ``record`` with today's ``name`` schema (use :meth:`encoder` in loops)."""
        return self.encoder(name)(record)

    # -- stamping the OneID -------------------------------------------------------------------

    def stamp_oneid(self, data: bytes, oneid: str) -> bytes:
        """Event bytes with ``oneid`` set, without re-encoding the body when that is safe.

        For today's Event layout ``oneid`` is the last field, so a null oneid is the final byte
        ``00`` (union branch 0) and stamping is a byte splice: ~100x cheaper than decode+encode.
        Bytes from an older writer or with a oneid already set are decoded and re-encoded with
        today's schema. ``data`` must be an Event this registry decodes (e.g. from the raw topic);
        the splice trusts its body, and a set oneid ending in NUL would read as null (OneIDs never do).
        """
        if data[:HEADER_SIZE] == self._oneid_splice and data[-1:] == b"\x00":  # None never equals
            value = oneid.encode("utf-8")
            return b"".join((data[:-1], b"\x02", _zigzag(len(value)), value))
        record = self.decode(data, EVENT)[1]
        record["oneid"] = oneid
        return self.encode(EVENT, record)

    # -- decoding ----------------------------------------------------------------------------

    def decoder(self, name: str) -> Decoder:
        """A function bytes -> record for ``name`` records written by any known version.

        The record is resolved to today's schema (defaults filled, removed fields dropped).
        Bytes of another schema raise :class:`DecodeError` ``unexpected_schema``.
        """
        name = self.canonical(name)
        table = {header: entry[1:] for header, entry in self._by_header.items() if entry[0] == name}

        def decode(data: bytes) -> Record:
            entry = _lookup(table, data)
            if entry is None:
                raise self._header_error(data, name)
            return _read(data, entry[0], entry[1], name)

        return decode

    def decode(self, data: bytes, expected: str | None = None) -> tuple[str, Record]:
        """``(name, record)`` of single-object ``data``, resolved to today's schema of that name.

        With ``expected`` set, bytes of any other schema raise ``unexpected_schema``.
        """
        if expected is not None:
            expected = self.canonical(expected)
        entry = _lookup(self._by_header, data)
        if entry is None:
            raise self._header_error(data, expected)
        name, writer, reader = entry
        if expected is not None and name != expected:
            raise DecodeError("unexpected_schema", f"expected a {expected!r} record, got {name!r}")
        return name, _read(data, writer, reader, name)

    def _header_error(self, data: bytes, expected: str | None) -> DecodeError:
        """Say precisely why a header is not one we can read."""
        if not isinstance(data, bytes | bytearray | memoryview):
            return DecodeError("bad_marker", f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            return DecodeError("truncated", "empty message: no single-object header")
        if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                return DecodeError("truncated", f"{len(data)} bytes: shorter than the single-object header")
            return DecodeError(
                "bad_marker",
                f"not Avro single-object encoding: starts with {data[:2].hex()}, "
                f"expected {MAGIC.hex()}",
            )
        if len(data) < HEADER_SIZE:
            return DecodeError(
                "truncated", f"{len(data)} bytes: shorter than the {HEADER_SIZE}-byte single-object header"
            )
        fp = data[len(MAGIC) : HEADER_SIZE].hex()
        entry = self._by_header.get(data[:HEADER_SIZE])
        if entry is not None and expected is not None:
            return DecodeError("unexpected_schema", f"expected a {expected!r} record, got {entry[0]!r}")
        return DecodeError(
            "unknown_fingerprint",
            f"unknown writer schema fingerprint {fp}"
            + (f" (expected a {expected!r} record)" if expected else "")
            + "; is its .avsc missing from schemas/history?",
        )


def _zigzag(n: int) -> bytes:
    """Avro's zig-zag varint of a non-negative long."""
    n <<= 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _lookup(table: Mapping[bytes, _T], data: Any) -> _T | None:
    """``table[header of data]``; bytearray/memoryview (unhashable) are copied, other types miss."""
    try:
        return table.get(data[:HEADER_SIZE])
    except TypeError:
        if isinstance(data, bytearray | memoryview):
            return table.get(bytes(data[:HEADER_SIZE]))
        return None


def _read(data: bytes, writer: dict[str, Any], reader: dict[str, Any] | None, name: str) -> Record:
    source = BytesIO(data)
    source.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(source, writer, reader)
    except EOFError:
        raise DecodeError(
            "truncated", f"{name!r} body ends early: {len(data)} bytes is not a whole record"
        ) from None
    except Exception as exc:  # untrusted bytes: any fastavro failure means "not a valid body"
        raise DecodeError(
            "bad_body",
            f"{name!r} body is not a valid Avro record ({type(exc).__name__} near byte "
            f"{source.tell()} of {len(data)})",
        ) from None
    if source.tell() != len(data):
        raise DecodeError(
            "trailing_bytes", f"{name!r} record ends at byte {source.tell()} but there are {len(data)} bytes"
        )
    return record  # type: ignore[return-value]


@cache
def default_registry() -> SchemaRegistry:
    """The registry of the schemas shipped in this package (built once per process)."""
    return SchemaRegistry(SCHEMA_DIR)
