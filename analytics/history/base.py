"""The events the profile stage would have applied, as one DuckDB table the rules are run over.

From the lake's ``events`` view (each event once per source and messageId, as the stage's
claims keep it) and ``identities`` (each stamped OneID's survivor), the table ``h_events``
holds one row per event the engine accepts, with what it files the event under:

* ``ts``: the timestamp, clamped to ``received_at`` + the event-time skew
  (``profiles.events.event_time``); rows with no valid time are left out, as the engine skips them;
* only events stamped with a OneID; late ones left out: an event older than the running
  maximum of earlier events' times (same stamped OneID, offset order) by more than
  ``options.allowed_lateness`` (the engine's ``skipped_late``);
* ``e_key``: the track name or page/screen name ``on:`` selects by;
* the ``event`` members the rules read, derived as ``profiles.events.EventView`` does
  (``path`` and friends from ``properties`` else ``context.page``, a URL's path when only a
  URL is given: that one is computed in Python, ``urllib.parse.urlsplit``, over the distinct URLs).

By design, not reproduced: lateness is judged against the stamped OneID's own earlier events,
while the stream judges it against the profile the event lands in (after a merge, the other
person's events count too); a duplicate messageId that came back after the stage's dedup
window (the stream applies it again, the lake's view keeps one); profiles erased or collected
(``streams/idle_profiles.py``) are still in the lake's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from analytics.history.cel_sql import JSON_MEMBERS, Fields, quote
from profiles.events import MAX_EVENT_TIME_MS

TABLE = "h_events"  # a view: the stored rows with ``rid`` (their row id)
ROWS = "h_events_rows"
_FIRSTS = "h_firsts"
_PAGE = ("path", "url", "referrer", "title", "search")
_TEXT = ("message_id", "anonymous_id", "user_id", "group_id", "source")
# the raw columns an EventView is built from, for rules evaluated by the CEL runtime (fallback)
RAW = ("type", "event", "name", "message_id", "timestamp", "anonymous_id", "user_id", "group_id",
       "source", "properties", "traits", "context", "identifiers")


def _object(column: str) -> str:
    """A JSON member as the engine reads it: the object, or ``{}`` for anything else. json_valid
    accepts exactly what a JSON cast does and the cast returns the text as it is, so valid text
    typed as an object is cast (the nested CASE parses it once more, only then); trimming the text
    to look for a brace cost more than the parse."""
    empty = "CAST('{}' AS JSON)"
    return (f"(CASE WHEN json_valid({column}) THEN (CASE WHEN json_type({column}) = 'OBJECT' "
            f"THEN CAST({column} AS JSON) ELSE {empty} END) ELSE {empty} END)")


def _text_or_empty(value: str) -> str:
    return f"(CASE WHEN json_type({value}) = 'VARCHAR' THEN json_extract_string({value}, '$') ELSE '' END)"


def _time(skew_ms: int) -> str:
    """``profiles.events.event_time``: the timestamp clamped to receipt + skew; NULL when invalid."""
    valid = f"BETWEEN 0 AND {MAX_EVENT_TIME_MS}"
    return (f"CASE WHEN e.timestamp {valid} THEN CASE WHEN e.received_at {valid} "
            f"AND e.timestamp > e.received_at + {skew_ms} THEN e.received_at + {skew_ms} "
            "ELSE e.timestamp END END")


def build(con: duckdb.DuckDBPyConnection, members: Iterable[str], *, raw: bool, skew_ms: int,
          lateness_ms: int, fields: Fields | None = None, identify_traits: bool = False,
          only: str = "TRUE") -> int:
    """Create ``h_events`` with the ``event`` members listed, the top-level keys of JSON members
    ``fields`` names (each its own column) and the raw columns when ``raw`` (``e_traits`` on
    identify rows alone with ``identify_traits``, when no expression reads them), of the accepted
    events ``only`` (SQL over ``e_type`` and ``e_key``) keeps; returns its row count.

    Three steps, each narrow where it can be: the merged OneIDs' survivors (a few rows, so the
    join builds on them), the late events (a window over four columns: sorting the wide rows cost
    more than everything else), then one scan that leaves those out. JSON is parsed only for the
    members read, once per member and row, the context again only where the properties give no page."""
    wanted = set(members)
    if "segments" in wanted:
        wanted.add("path")
    page = [m for m in _PAGE if m in wanted or (m in ("path", "url") and wanted & set(_PAGE))]
    keys = fields.keys if fields is not None else {}
    ts = _time(skew_ms)
    con.execute("CREATE OR REPLACE TEMP TABLE h_links AS SELECT oneid, survivor FROM merged_identities")
    # late: older than the earlier events' latest by more than the lateness. The running maximum
    # may include the event itself: then it is that maximum, never late.
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE h_late AS
    SELECT oneid, _partition, _offset FROM (
        SELECT e.oneid, e._partition, e._offset, {ts} AS ts FROM events e WHERE e.oneid IS NOT NULL
    ) WHERE ts IS NOT NULL
    QUALIFY ts < max(ts) OVER (PARTITION BY oneid ORDER BY _partition, _offset ROWS UNBOUNDED PRECEDING)
                 - {lateness_ms}
    """)
    inner = ["e.oneid", "coalesce(l.survivor, e.oneid) AS survivor", "e._partition", "e._offset",
             "e.e_type", "e.e_key", "e.timestamp AS e_timestamp", f"{ts} AS ts"]
    if "event" in wanted:
        inner.append("e.event AS e_event")
    if "name" in wanted:
        inner.append("e.name AS e_name")
    inner += [f"e.{m}" for m in _TEXT if m in wanted]
    inner += [f"{_object('e.' + m)} AS e_{m}" for m in JSON_MEMBERS if m in wanted]
    if identify_traits and "traits" not in wanted:
        inner.append(f"CASE WHEN e.type = 'identify' THEN {_object('e.traits')} END AS e_traits")
    if raw:
        inner += [f"e.{c} AS r_{c}" for c in RAW]
    # each member's paths in one json_extract: the page's (properties) first, then the keys read
    paths = {m: [f"$.{k}" for k in page] if m == "properties" else [] for m in JSON_MEMBERS}
    for member, found in keys.items():
        paths[member] += [f'$."{k}"' for k in found]
    for member, listed in paths.items():
        if listed:  # a key of valid JSON that is not an object is absent, as in {}: NULL
            at = f"[{', '.join(quote(x) for x in listed)}]"
            text = f"e.{member}"
            value = (f"json_extract(e_{member}, {at})" if member in wanted
                     else f"CASE WHEN json_valid({text}) THEN json_extract({text}, {at}) END")
            inner.append(f"{value} AS x_{member}")
    unpacked = ["*"]
    for member, found in keys.items():
        first = len(page) + 1 if member == "properties" else 1
        unpacked += [f"x_{member}[{first + i}] AS {column}" for i, column in enumerate(found.values())]
    dropped = [f"x_{m}" for m, listed in paths.items() if listed]
    chosen, final = [], ["*"]
    if page:  # EventView.page(): the properties' fields, else context.page's when it is an object
        if "context" not in wanted:
            inner.append("e.context AS page_context_text")
            dropped.append("page_context_text")
        unpacked.append(f"{_context_page(page, 'context' in wanted)} AS page_context")
        dropped.append("page_context")
        chosen = [f"CASE WHEN json_type(page_context[1]) = 'OBJECT' THEN page_context[{i + 2}] "
                  f"ELSE x_properties[{i + 1}] END AS j_{m}" for i, m in enumerate(page)]
        final = [f"* EXCLUDE ({', '.join(f'j_{m}' for m in page)})"]
        final += [f"{_text_or_empty(f'j_{m}')} AS e_{m}" for m in page]
    kept = f"* EXCLUDE ({', '.join(dropped)})" if dropped else "*"
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE {ROWS} AS
    WITH typed AS (
        SELECT *, CAST(type AS VARCHAR) AS e_type, CASE WHEN type = 'track' THEN event ELSE name END AS e_key
        FROM events WHERE oneid IS NOT NULL
    ), ev AS (
        SELECT {", ".join(inner)}
        FROM typed e LEFT JOIN h_links l ON l.oneid = e.oneid
        WHERE ({ts}) IS NOT NULL AND ({only})
    ), kept AS (
        SELECT * FROM ev ANTI JOIN h_late k
        ON k.oneid = ev.oneid AND k._partition = ev._partition AND k._offset = ev._offset
    ), unpacked AS (SELECT {", ".join(unpacked)} FROM kept
    ), chosen AS (SELECT {", ".join([kept, *chosen])} FROM unpacked)
    SELECT {", ".join(final)} FROM chosen
    """)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {TABLE} AS SELECT rowid AS rid, * FROM {ROWS}")
    con.execute(f"DROP TABLE h_late; DROP TABLE IF EXISTS {_FIRSTS}")
    if page:
        _url_paths(con)
    ((count,),) = con.execute(f"SELECT count(*) FROM {ROWS}").fetchall()
    return int(count)


def firsts(con: duckdb.DuckDBPyConnection) -> str:
    """The table of every survivor's first event time (``survivor``, ``first_seen``), made once
    per ``h_events`` (each replayed tag reads it)."""
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_FIRSTS} AS "
                f"SELECT survivor, min(ts) AS first_seen FROM {TABLE} GROUP BY survivor")
    return _FIRSTS


def _context_page(page: list[str], stored: bool) -> str:
    """``[context.page, its page members...]`` as JSON where the properties have neither path nor
    url and the context may hold a key ``page`` (NULL elsewhere): the context is parsed for those
    rows alone. A key ``page`` is written ``"page"``, or with an escape: text with neither has none."""
    at = "[" + ", ".join(quote(x) for x in ["$.page", *(f"$.page.{m}" for m in page)]) + "]"
    found = (f"json_extract(e_context, {at})" if stored else
             f"CASE WHEN json_valid(page_context_text) THEN json_extract(page_context_text, {at}) END")
    text = "e_context" if stored else "page_context_text"
    return (f"CASE WHEN x_properties[1] IS NULL AND x_properties[2] IS NULL "
            f"AND (contains({text}, '\"page\"') OR contains({text}, '\\')) THEN {found} END")


def _url_paths(con: duckdb.DuckDBPyConnection) -> None:
    """``path`` from ``url`` where only a URL was given, by Python's own urlsplit (DuckDB has none)."""
    urls = [u for (u,) in con.execute(
        f"SELECT DISTINCT e_url FROM {TABLE} WHERE e_path = '' AND e_url <> ''").fetchall()]
    if not urls:
        return
    table = pa.table({"url": urls, "path": [_url_path(u) for u in urls]})
    con.register("h_url_paths", table)
    con.execute(f"UPDATE {ROWS} SET e_path = m.path FROM h_url_paths m "
                f"WHERE {ROWS}.e_path = '' AND {ROWS}.e_url = m.url")
    con.unregister("h_url_paths")


def _url_path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""

