"""Schema compatibility: would a change break a reader or a writer that is still running?

Two independent checks, both following Avro schema resolution (spec, "Schema Resolution"):

- a static walk of writer against reader: type changes beyond the allowed promotions, reader
  fields missing from the writer without a default, enum symbols a reader cannot map, union
  branches with no match;
- a dynamic proof: records generated from the writer schema are encoded and read back with the
  reader schema by fastavro, the library the platform decodes with.

:func:`check_registry` applies both in each direction to every pinned version (full
compatibility), so a schema change that would break a deployed producer or consumer fails a test.
"""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from fastavro.utils import generate_many

if TYPE_CHECKING:
    from schemas.codec import SchemaRegistry

NAMESPACE = "io.touchstream"
SAMPLES = 60

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed", "error"})
PROMOTIONS = frozenset({
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
    ("float", "double"), ("string", "bytes"), ("bytes", "string"),
})


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _qualify(alias: str, fullname: str) -> str:
    namespace = fullname.rpartition(".")[0]
    return alias if "." in alias or not namespace else f"{namespace}.{alias}"


class _Resolution:
    """Static Avro resolution of one parsed writer schema against one parsed reader schema."""

    def __init__(self, writer: dict[str, Any], reader: dict[str, Any]) -> None:
        self.writer_names: dict[str, Any] = writer.get("__named_schemas", {})
        self.reader_names: dict[str, Any] = reader.get("__named_schemas", {})
        self.problems: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def _deref(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names.get(schema, schema)
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"]  # a primitive with a logicalType resolves as the primitive
        return schema

    def _describe(self, schema: Any) -> str:
        return str(schema["name"]) if isinstance(schema, dict) and "name" in schema else _kind(schema)

    def matches(self, writer: Any, reader: Any) -> bool:
        """The spec's 'schemas match' test (no recursion into fields)."""
        writer = self._deref(writer, self.writer_names)
        reader = self._deref(reader, self.reader_names)
        wk, rk = _kind(writer), _kind(reader)
        if wk != rk:
            return (wk, rk) in PROMOTIONS
        if wk in NAMED:
            aliases = {_qualify(a, reader["name"]) for a in reader.get("aliases", ())}
            if writer["name"] != reader["name"] and writer["name"] not in aliases:
                return False
            return wk != "fixed" or writer["size"] == reader["size"]
        return True

    def resolve(self, writer: Any, reader: Any, path: str) -> None:
        writer = self._deref(writer, self.writer_names)
        reader = self._deref(reader, self.reader_names)
        if isinstance(writer, list):
            for branch in writer:
                self._resolve_branch(branch, reader, path)
            return
        if isinstance(reader, list):
            self._resolve_branch(writer, reader, path)
            return
        if not self.matches(writer, reader):
            self.problems.append(
                f"{path}: type changed from {self._describe(writer)} to {self._describe(reader)}"
            )
            return
        kind = _kind(writer)
        if kind in ("record", "error"):
            self._resolve_record(writer, reader, path)
        elif kind == "enum":
            lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if lost and "default" not in reader:
                self.problems.append(
                    f"{path}: enum {reader['name']} lost symbols {lost} and has no default symbol"
                )
        elif kind == "array":
            self.resolve(writer["items"], reader["items"], f"{path}[]")
        elif kind == "map":
            self.resolve(writer["values"], reader["values"], f"{path}{{}}")

    def _resolve_branch(self, writer: Any, reader: Any, path: str) -> None:
        """One writer (non-union) schema against a reader that may be a union."""
        candidates = reader if isinstance(reader, list) else [reader]
        # The spec picks the first branch that matches exactly, else the first that promotes.
        writer_kind = _kind(self._deref(writer, self.writer_names))
        matching = [c for c in candidates if self.matches(writer, c)]
        exact = [c for c in matching if _kind(self._deref(c, self.reader_names)) == writer_kind]
        chosen = exact or matching
        if not chosen:
            self.problems.append(
                f"{path}: writer may write {self._describe(self._deref(writer, self.writer_names))}, "
                f"which the reader's {'union' if isinstance(reader, list) else 'type'} "
                f"{self._describe(reader) if not isinstance(reader, list) else [_kind(c) for c in reader]} "
                "cannot hold"
            )
            return
        self.resolve(writer, chosen[0], path)

    def _resolve_record(self, writer: dict[str, Any], reader: dict[str, Any], path: str) -> None:
        key = (writer["name"], reader["name"])
        if key in self._seen:
            return
        self._seen.add(key)
        by_name = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", ())]
            source = next((by_name[n] for n in names if n in by_name), None)
            where = f"{path}.{field['name']}"
            if source is None:
                if "default" not in field:
                    self.problems.append(
                        f"{where}: reader field missing from the writer has no default "
                        "(added without a default, or removed while readers still need it)"
                    )
            else:
                self.resolve(source["type"], field["type"], where)


def _parse(schema: Any, role: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        parsed = parse_schema(schema)
    except Exception as exc:  # fastavro raises several types for a malformed schema
        problems.append(f"{role} schema does not parse: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(parsed, dict):
        problems.append(f"{role} schema is not a named Avro type")
        return None
    return parsed


def _dynamic(writer: dict[str, Any], reader: dict[str, Any], samples: int) -> list[str]:
    """Write generated records with ``writer`` and read them with ``reader`` through fastavro."""
    problems: list[str] = []
    for record in generate_many(writer, samples):
        out = BytesIO()
        schemaless_writer(out, writer, record)
        out.seek(0)
        try:
            schemaless_reader(out, writer, reader)
        except Exception as exc:  # a resolution failure of any kind is the finding itself
            problem = f"fastavro cannot read writer data with the reader schema: {type(exc).__name__}: {exc}"
            if problem not in problems:
                problems.append(problem)
    return problems


def check_compatible(writer: Any, reader: Any, samples: int = SAMPLES) -> list[str]:
    """Problems a ``reader`` schema has reading data written with ``writer``; empty when compatible.

    Accepts schemas as JSON data (dict) or fastavro-parsed. Pass them swapped to check that old
    readers can read new data (forward compatibility).
    """
    problems: list[str] = []
    parsed_writer = _parse(writer, "writer", problems)
    parsed_reader = _parse(reader, "reader", problems)
    if parsed_writer is None or parsed_reader is None:
        return problems
    resolution = _Resolution(parsed_writer, parsed_reader)
    resolution.resolve(parsed_writer, parsed_reader, str(parsed_reader.get("name", "")))
    if resolution.problems:  # the dynamic check would only repeat them, less clearly
        return problems + resolution.problems
    return problems + _dynamic(parsed_writer, parsed_reader, samples)


def _policy(name: str, schema: dict[str, Any]) -> list[str]:
    """House rules for today's schemas: our namespace; optional means nullable with default null."""
    problems: list[str] = []
    if not str(schema["name"]).startswith(NAMESPACE + "."):
        problems.append(f"{name}: record {schema['name']} is not in namespace {NAMESPACE}")
    for named in schema.get("__named_schemas", {}).values():
        for field in named.get("fields", ()):
            kind = field["type"]
            if not (isinstance(kind, list) and "null" in kind):
                continue
            if kind[0] != "null" or "default" not in field or field["default"] is not None:
                problems.append(
                    f"{name}: {named['name']}.{field['name']} is optional: "
                    'make it ["null", ...] with default null'
                )
    return problems


def _expand(schema: Any, names: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """``schema`` with every named reference inlined, so a type's form does not depend on the file."""
    if isinstance(schema, str):
        if schema in names and schema not in stack:
            return _expand(names[schema], names, stack)
        return schema
    if isinstance(schema, list):
        return [_expand(branch, names, stack) for branch in schema]
    kind = schema["type"]
    if kind in ("record", "error"):
        inner = (*stack, schema["name"])
        fields = [{**f, "type": _expand(f["type"], names, inner)} for f in schema["fields"]]
        return {**schema, "fields": fields}
    if kind == "array":
        return {**schema, "items": _expand(schema["items"], names, stack)}
    if kind == "map":
        return {**schema, "values": _expand(schema["values"], names, stack)}
    return schema


def check_registry(registry: SchemaRegistry, samples: int = SAMPLES) -> list[str]:
    """Every problem with the registry's schemas; empty when all are fully compatible.

    For each schema: a pinned history exists; every historic version is readable by today's
    schema (backward) and today's data by every historic version (forward); house rules hold;
    a named type shared between files (e.g. ``Identifier``) is defined identically everywhere.
    """
    problems: list[str] = []
    shared: dict[str, tuple[str, str]] = {}
    for name in registry.names:
        current = registry.current(name)
        problems.extend(_policy(name, current.parsed))
        history = registry.history(name)
        if not history:
            stem = current.path.stem
            problems.append(f"{name}: no pinned history; copy {stem}.avsc to history/{stem}/v1.avsc")
        for old in history:
            problems.extend(
                f"{name}: data of {old.version} unreadable by current (backward): {p}"
                for p in check_compatible(old.parsed, current.parsed, samples)
            )
            problems.extend(
                f"{name}: current data unreadable by {old.version} readers (forward): {p}"
                for p in check_compatible(current.parsed, old.parsed, samples)
            )
        names = current.parsed.get("__named_schemas", {})
        for fullname, named in names.items():
            form = to_parsing_canonical_form(_expand(named, names, ()))
            first = shared.setdefault(fullname, (current.path.name, form))
            if first[1] != form:
                problems.append(f"{fullname} is defined differently in {first[0]} and {current.path.name}")
    return problems
