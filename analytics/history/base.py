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

from analytics.history.cel_sql import quote
from profiles.events import MAX_EVENT_TIME_MS

TABLE = "h_events"
_PAGE = ("path", "url", "referrer", "title", "search")
_JSON_MEMBERS = ("properties", "traits", "context")
_TEXT = ("message_id", "anonymous_id", "user_id", "group_id", "source")
# the raw columns an EventView is built from, for rules evaluated by the CEL runtime (fallback)
RAW = ("type", "event", "name", "message_id", "timestamp", "anonymous_id", "user_id", "group_id",
       "source", "properties", "traits", "context", "identifiers")


def _object(column: str) -> str:
    """A JSON member as the engine reads it: the object, or ``{}`` for anything else (one parse:
    valid JSON that starts with a brace is an object; TRY_CAST is ~7x cheaper than json_valid)."""
    return (f"(CASE WHEN left(trim({column}, ' \t\r\n'), 1) = '{{' "
            f"THEN coalesce(TRY_CAST({column} AS JSON), CAST('{{}}' AS JSON)) ELSE CAST('{{}}' AS JSON) END)")


def _text_or_empty(value: str) -> str:
    return f"(CASE WHEN json_type({value}) = 'VARCHAR' THEN json_extract_string({value}, '$') ELSE '' END)"


def build(con: duckdb.DuckDBPyConnection, members: Iterable[str], *, raw: bool, skew_ms: int,
          lateness_ms: int) -> int:
    """Create ``h_events`` with the ``event`` members listed (and the raw columns when ``raw``);
    returns its row count."""
    wanted = set(members)
    if "segments" in wanted:
        wanted.add("path")
    if wanted & set(_PAGE):
        wanted.update(("properties", "context", "path", "url"))
    page = [m for m in _PAGE if m in wanted]
    valid = f"BETWEEN 0 AND {MAX_EVENT_TIME_MS}"
    inner = ["e.oneid", "coalesce(l.survivor, e.oneid) AS survivor", "e._partition", "e._offset",
             "CAST(e.type AS VARCHAR) AS e_type",
             "CASE WHEN e.type = 'track' THEN e.event ELSE e.name END AS e_key", "e.timestamp AS e_timestamp",
             f"CASE WHEN e.timestamp {valid} THEN CASE WHEN e.received_at {valid} "
             f"AND e.timestamp > e.received_at + {skew_ms} THEN e.received_at + {skew_ms} "
             "ELSE e.timestamp END END AS ts"]
    if "event" in wanted:
        inner.append("e.event AS e_event")
    if "name" in wanted:
        inner.append("e.name AS e_name")
    inner += [f"e.{m}" for m in _TEXT if m in wanted]
    inner += [f"{_object('e.' + m)} AS e_{m}" for m in _JSON_MEMBERS if m in wanted]
    if raw:
        inner += [f"e.{c} AS r_{c}" for c in RAW]
    outer = ["*"]
    inner_page = ""
    if page:  # EventView.page(): the properties' fields, else context.page's when it is an object
        listed = "[" + ", ".join(quote(f"$.{m}") for m in page) + "]"
        in_context = "[" + ", ".join(quote(f"$.page.{m}") for m in page) + "]"
        inner_page = (f", json_extract(e_properties, {listed}) AS page_props, "
                      f"json_extract(e_context, '$.page') AS page_context")
        source = ("(CASE WHEN page_props[1] IS NULL AND page_props[2] IS NULL "
                  f"AND json_type(page_context) = 'OBJECT' THEN json_extract(e_context, {in_context}) "
                  "ELSE page_props END)")
        outer = ["* EXCLUDE (page_props, page_context, page_source)"]
        outer += [f"{_text_or_empty(f'page_source[{i + 1}]')} AS e_{m}" for i, m in enumerate(page)]
        outer_source = f", {source} AS page_source"
    else:
        outer_source = ""
    sql = f"""
    CREATE OR REPLACE TEMP TABLE {TABLE} AS
    WITH links AS (SELECT oneid, survivor FROM merged_identities),
    ev AS (
        SELECT {", ".join(inner)}
        FROM events e LEFT JOIN links l ON l.oneid = e.oneid
        WHERE e.oneid IS NOT NULL
    ), timed AS (
        SELECT *{inner_page} FROM ev WHERE ts IS NOT NULL
        -- late: older than the earlier events' latest by more than the lateness. The running
        -- maximum may include the event itself: then it is that maximum, never late.
        QUALIFY ts >= max(ts) OVER (PARTITION BY oneid ORDER BY _partition, _offset ROWS UNBOUNDED PRECEDING)
                      - {lateness_ms}
    ), paged AS (SELECT *{outer_source} FROM timed)
    SELECT row_number() OVER () AS rid, {", ".join(outer)} FROM paged
    """
    con.execute(sql)
    if page:
        _url_paths(con)
    ((count,),) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()
    return int(count)


def _url_paths(con: duckdb.DuckDBPyConnection) -> None:
    """``path`` from ``url`` where only a URL was given, by Python's own urlsplit (DuckDB has none)."""
    urls = [u for (u,) in con.execute(
        f"SELECT DISTINCT e_url FROM {TABLE} WHERE e_path = '' AND e_url <> ''").fetchall()]
    if not urls:
        return
    table = pa.table({"url": urls, "path": [_url_path(u) for u in urls]})
    con.register("h_url_paths", table)
    con.execute(f"UPDATE {TABLE} SET e_path = m.path FROM h_url_paths m "
                f"WHERE {TABLE}.e_path = '' AND {TABLE}.e_url = m.url")
    con.unregister("h_url_paths")


def _url_path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""

