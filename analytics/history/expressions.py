"""Rule expressions as SQL over ``h_events``: translated when they can be, else evaluated by the
CEL runtime over the rows and handed back to DuckDB as an Arrow table.

Translation (:mod:`analytics.history.cel_sql`) keeps a condition inside DuckDB's one pass.
An expression it does not translate is run by the project's own :class:`~profiles.conditions.Condition`
on the rows its rule selects (``on:``), with the ``event`` variable an
:class:`~profiles.events.EventView` builds from the lake's row, as the engine builds it. An
expression that reads only plain event members (``Condition.memo_keys``: path, name, type...)
is evaluated once per distinct value of those members, as the engine memoizes it. Its result
comes back as ``h_fb_<n> (rid, v)``: a BOOLEAN (exactly true) for a condition, JSON text for a
value (null for CEL null, SQL NULL for an error), joined by row id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from analytics.history import base, cel_sql
from analytics.history.cel_sql import BOOL, JSON, Sql
from profiles import jsonsafe
from profiles.conditions import Condition, EvalError
from profiles.evaluation import safe_context
from profiles.events import EventView
from profiles.rules.model import EventKey

log = logging.getLogger(__name__)

# event member -> the h_events column a memoizable condition is keyed on
_MEMO_COLUMNS = {"type": "e_type", "event": "e_event", "name": "e_name", "path": "e_path",
                 "segments": "e_path", "url": "e_url", "referrer": "e_referrer", "title": "e_title",
                 "search": "e_search", "source": "source"}


def on_sql(on: Iterable[EventKey]) -> str:
    """SQL true for the events an ``on:`` selects (type, or type and track/page name, or ``*``)."""
    parts = []
    for etype, name in on:
        if etype == "*":
            return "TRUE"
        test = f"e_type = {cel_sql.quote(etype)}"
        if name is not None:
            test = f"({test} AND e_key = {cel_sql.quote(name)})"
        parts.append(test)
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


@dataclass
class _Pending:
    condition: Condition
    on: str  # the rows it is evaluated on
    is_value: bool
    table: str


@dataclass
class Expressions:
    """Every event-only expression of a run, planned before ``h_events`` exists, filled after."""

    translated: dict[str, bool] = field(default_factory=dict)  # source -> translated?
    members: set[str] = field(default_factory=set)
    pending: list[_Pending] = field(default_factory=list)
    fields: cel_sql.Fields = field(default_factory=cel_sql.Fields)  # JSON keys read, as columns
    _cache: dict[tuple[str, str, bool], Sql] = field(default_factory=dict)

    @property
    def needs_raw(self) -> bool:
        return bool(self.pending)

    def condition(self, condition: Condition | None, on: str) -> str:
        """SQL true where the condition is exactly true (no condition: TRUE)."""
        if condition is None:
            return "TRUE"
        return f"({cel_sql.as_bool(self._sql(condition, on, is_value=False))} IS TRUE)"

    def value(self, condition: Condition, on: str) -> Sql:
        """The expression's value (a typed SQL expression; NULL for an error)."""
        return self._sql(condition, on, is_value=True)

    def _sql(self, condition: Condition, on: str, *, is_value: bool) -> Sql:
        key = (condition.source, on, is_value)
        found = self._cache.get(key)
        if found is not None:
            return found
        done = cel_sql.translate(condition.source, fields=self.fields)
        self.translated[condition.source] = done is not None
        if done is not None:
            sql, read = done
            self.members |= read
        else:
            table = f"h_fb_{len(self.pending)}"
            self.pending.append(_Pending(condition, on, is_value, table))
            if condition.memo_keys is not None:
                self.members.update(condition.memo_keys)
            sql = Sql(f"{table}.v", JSON) if is_value else Sql(f"{table}.v", BOOL)
        self._cache[key] = sql
        return sql

    def joins(self) -> str:
        """The LEFT JOINs a query over ``h_events`` needs for the evaluated expressions."""
        return "".join(f" LEFT JOIN {p.table} ON {p.table}.rid = {base.TABLE}.rid" for p in self.pending)

    def fill(self, con: duckdb.DuckDBPyConnection) -> None:
        """Evaluate every untranslated expression over its rows (``h_events`` must exist)."""
        for item in self.pending:
            _evaluate(con, item)


def _result(condition: Condition, variables: dict[str, object], is_value: bool) -> object:
    try:
        value = condition(safe_context(variables))
    except EvalError:
        return None
    if is_value:
        return jsonsafe.dumps(value)
    return value is True


def _evaluate(con: duckdb.DuckDBPyConnection, item: _Pending) -> None:
    condition, kind = item.condition, "JSON" if item.is_value else "BOOLEAN"
    keys = condition.memo_keys
    if keys is not None:
        columns = sorted({_MEMO_COLUMNS[k] for k in keys})
        listed = ", ".join(columns)
        rows = con.sql(f"SELECT DISTINCT {listed} FROM {base.TABLE} WHERE {item.on}").fetchall()
        results = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            event = {k: _memo_member(k, values) for k in keys}
            results.append(_result(condition, {"event": event}, item.is_value))
        memo = pa.table({**{c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)},
                         "v": pa.array(results, pa.string() if item.is_value else pa.bool_())})
        con.register("h_memo", memo)
        match = " AND ".join(f"e.{c} IS NOT DISTINCT FROM m.{c}" for c in columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {item.table} AS SELECT e.rid, CAST(m.v AS {kind}) AS v "
                    f"FROM {base.TABLE} e JOIN h_memo m ON {match} WHERE {item.on}")
        con.unregister("h_memo")
        log.info("evaluated %r on %d distinct values", condition.source, len(rows))
        return
    raw_columns = ", ".join(f"r_{c}" for c in base.RAW)
    relation = con.sql(f"SELECT rid, {raw_columns} FROM {base.TABLE} WHERE {item.on}")
    rids: list[int] = []
    found: list[object] = []
    needs = condition.needs.event
    for batch in relation.to_arrow_reader(100_000):
        for row in batch.to_pylist():
            rids.append(row["rid"])
            raw = {c: row[f"r_{c}"] for c in base.RAW}
            found.append(_result(condition, {"event": EventView(raw).build(needs)}, item.is_value))
    table = pa.table({"rid": pa.array(rids, pa.int64()),
                      "v": pa.array(found, pa.string() if item.is_value else pa.bool_())})
    con.register("h_rows", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {item.table} AS "
                f"SELECT rid, CAST(v AS {kind}) AS v FROM h_rows")
    con.unregister("h_rows")
    log.info("evaluated %r on %d rows", condition.source, len(rids))


def _memo_member(member: str, columns: dict[str, object]) -> object:
    if member == "segments":
        path = columns["e_path"]
        return [s for s in str(path).split("/") if s]
    return columns[_MEMO_COLUMNS[member]]
