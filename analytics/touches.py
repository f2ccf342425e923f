"""Touches and conversions from the lake: one scan of ``events`` that classifies every event.

Set-based on purpose (ten million events in seconds): one scan of ``events`` finds the
conversions and extracts every other event's features from its JSON text, and the channel rules
(``analytics.channels``) classify it in the same scan as one SQL ``CASE``. Costly functions run
only where they can find something (a host only behind a referrer, a query parameter only in a
URL naming it, ``context`` parsed only when it holds a member read here): most events are page
views inside the own site. The rows come back as Arrow (cheaper than a DuckDB table of the same
rows); ``analytics.attribution.journeys`` orders them into journeys.

People are survivors: ``identities`` maps every OneID to the profile it was merged into, so a
visitor's anonymous touches and the orders they placed after signing in are one journey. An
event without a OneID (none reaches the resolved topic today) is a person of its own, so a
conversion is never dropped.

``_a_links`` (temporary, replaced on each call, on the caller's connection): oneid, survivor of
each merged OneID (``identities``, computed once).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics.channels import ChannelRules
from connectors.lake.query import RAW_EVENTS

LINKS = "_a_links"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$")
#: Who an event belongs to (``e``: the event, ``l``: its row of ``_a_links``)
PERSON = "coalesce(l.survivor, e.oneid, '~' || e.source || ':' || e.message_id)"


@dataclass(frozen=True)
class Conversion:
    """Which events are conversions and what each is worth.

    ``revenue_fields`` are properties tried in order (dotted for nested ones); the first that
    reads as a number is the revenue, else 0 (lead conversions carry none). ``since_ms`` and
    ``until_ms`` bound the conversions' time (inclusive); touches before ``since_ms`` still count.
    """

    event: str = "Order Completed"
    revenue_fields: tuple[str, ...] = ("revenue", "total")
    since_ms: int | None = None
    until_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.revenue_fields:
            raise ValueError("name at least one revenue field")
        for name in self.revenue_fields:
            if not _FIELD.match(name):
                raise ValueError(f"not a property name: {name!r}")

    def revenue_paths(self) -> str:
        """The JSON paths of ``revenue_fields`` as a DuckDB list (read in one parse)."""
        paths = ("'$." + ".".join(f'"{p}"' for p in name.split(".")) + "'" for name in self.revenue_fields)
        return "[" + ", ".join(paths) + "]"

    def revenue_sql(self, values: str) -> str:
        """The revenue from ``values``, the list ``json_extract_string(properties, revenue_paths)``
        gave: the first that reads as a finite number, else 0."""
        tries = [f"try_cast({values}[{i + 1}] AS DOUBLE)" for i in range(len(self.revenue_fields))]
        finite = [f"CASE WHEN isfinite({t}) THEN {t} END" for t in tries]
        return f"coalesce({', '.join([*finite, '0.0'])})"

    def time_sql(self, column: str) -> str:
        bounds = []
        if self.since_ms is not None:
            bounds.append(f"{column} >= {int(self.since_ms)}")
        if self.until_ms is not None:
            bounds.append(f"{column} <= {int(self.until_ms)}")
        return " AND ".join(bounds) or "true"


def event_source(con: duckdb.DuckDBPyConnection) -> str:
    """What a question that copies of an event cannot change may scan: every record
    (``events_raw``) while the lake holds no unmerge; after one, the ``events`` view (it moves
    the events a split moved to the new OneID, a rule kept in one place)."""
    [(unmerges,)] = con.sql("SELECT count(*) FROM merges WHERE kind = 'unmerge'").fetchall()
    return RAW_EVENTS if unmerges == 0 else "events"


def build_links(con: duckdb.DuckDBPyConnection) -> None:
    """``_a_links``: each merged OneID and its survivor (the recursive ``identities`` view, once;
    joined per query it cost more than the rest of a run)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {LINKS} AS "  # noqa: S608 - the module's own name
                "SELECT oneid, survivor FROM identities WHERE hops > 0")


def classified_rows(con: duckdb.DuckDBPyConnection, conversion: Conversion, rules: ChannelRules,
                    shards: int = 1) -> pa.Table:
    """Every conversion and every touch (before visits are collapsed), in no order: person, ts,
    source, message_id, is_conv, revenue and counted (conversions: inside since..until; the
    others still end journeys), channel (touches: its position in ``rules.channels``) and
    campaign (touches; NULL: none), and shard (``0..shards - 1``, a hash of the person: a person's
    rows share one), from the ``events`` view (each event once, unmerges applied: a scan with an
    anti-join on the copies ``connect`` found)."""
    build_links(con)
    features = {name: f"f.{name}" for name in ("utm_source", "utm_medium", "referrer", "event", "type",
                                              "context_channel", "page_host")}
    features["source"] = "f.lower_source"
    context_paths = "['$.campaign.source', '$.campaign.medium', '$.campaign.name', '$.page.url', " \
                    "'$.page.referrer', '$.channel']"
    context_members = " OR ".join(f"contains(e.context, '\"{m}\"')" for m in ("campaign", "page", "channel"))
    property_paths = "['$.url', '$.referrer', '$.campaign']"

    def utm(name: str, at: int) -> str:  # context.campaign's, else the URL's
        return f"lower(coalesce(nullif(c[{at}], ''), {_query('url', 'utm_' + name)}))"

    sql = f"""
        WITH raw AS (
            SELECT {PERSON} AS person, e.timestamp AS ts, e.source, e.message_id, e.type, e.event,
                   coalesce(e.type = 'track' AND e.event = $conversion, false) AS is_conv,
                   CASE WHEN NOT is_conv THEN json_extract_string(e.properties, {property_paths}) END AS p,
                   CASE WHEN is_conv
                        THEN json_extract_string(e.properties, {conversion.revenue_paths()}) END AS r,
                   CASE WHEN NOT is_conv AND ({context_members})
                        THEN json_extract_string(e.context, {context_paths}) END AS c
            FROM events e LEFT JOIN {LINKS} l ON l.oneid = e.oneid
        ), parts AS (
            SELECT *, coalesce(p[1], c[4], '') AS url, coalesce(p[2], c[5], '') AS ref FROM raw
        ), hosts AS (
            SELECT *, CASE WHEN ref = '' THEN '' ELSE {_authority('ref')} END AS ref_authority,
                      CASE WHEN ref = '' THEN '' ELSE {_authority('url')} END AS url_authority,
                      c IS NULL AND ref = '' AND NOT contains(url, 'utm_') AS quiet
            FROM parts
        ), f AS (
            SELECT person, ts, source, message_id, is_conv, r,
                   lower(type) AS type, lower(coalesce(event, '')) AS event, lower(source) AS lower_source,
                   CASE WHEN quiet THEN '' ELSE {utm('source', 1)} END AS utm_source,
                   CASE WHEN quiet THEN '' ELSE {utm('medium', 2)} END AS utm_medium,
                   CASE WHEN ref = '' THEN '' ELSE {_host('ref_authority')} END AS referrer,
                   CASE WHEN ref = '' THEN '' ELSE {_host('url_authority')} END AS page_host,
                   CASE WHEN c IS NULL THEN '' ELSE lower(coalesce(c[6], '')) END AS context_channel,
                   CASE WHEN quiet THEN nullif(p[3], '')
                        ELSE coalesce(nullif(c[3], ''), nullif({_query('url', 'utm_campaign')}, ''),
                                      nullif(p[3], '')) END AS campaign
            FROM hosts
        ), classified AS (
            SELECT person, ts, source, message_id, is_conv,
                   CASE WHEN is_conv THEN {conversion.revenue_sql('r')} END AS revenue,
                   CASE WHEN is_conv THEN {conversion.time_sql('ts')} END AS counted,
                   CASE WHEN is_conv THEN NULL ELSE {rules.sql_case(features)} END AS channel,
                   CASE WHEN is_conv THEN NULL ELSE campaign END AS campaign
            FROM f
        )
        SELECT person, ts, source, message_id, is_conv, revenue, counted, channel, campaign,
               CAST(hash(person) % {int(shards)} AS INTEGER) AS shard
        FROM classified WHERE is_conv OR channel IS NOT NULL
    """  # noqa: S608 - fixed names; rule values are quoted literals
    # Pushed below the projection, the filter would inline the CASE and run it twice per event.
    with _optimizer_off(con, "filter_pushdown"):
        return con.sql(sql, params={"conversion": conversion.event}).to_arrow_table()


@contextmanager
def _optimizer_off(con: duckdb.DuckDBPyConnection, name: str) -> Iterator[None]:
    """DuckDB's optimizer pass ``name`` off for the block (the setting is the connection's, so
    the one found is put back)."""
    [(before,)] = con.execute("SELECT current_setting('disabled_optimizers')").fetchall()
    con.execute("SET disabled_optimizers = $v", {"v": ",".join(filter(None, [before, name]))})
    try:
        yield
    finally:
        con.execute("SET disabled_optimizers = $v", {"v": before})


def _authority(url: str) -> str:
    """What follows ``scheme://`` up to the path, query or fragment ('' for anything else)."""
    return f"regexp_extract({url}, '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)', 1)"


def _host(authority: str) -> str:
    """The lower-case host of an authority: without user info and port."""
    return (f"lower(CASE WHEN contains({authority}, '@') OR contains({authority}, ':') "
            f"THEN split_part(string_split({authority}, '@')[-1], ':', 1) ELSE {authority} END)")


def _query(url: str, name: str) -> str:
    """One query parameter of a URL, decoded ('' when absent)."""
    value = f"regexp_extract({url}, '[?&]{name}=([^&#]*)', 1)"
    return f"CASE WHEN contains({url}, '{name}=') THEN url_decode(replace({value}, '+', ' ')) ELSE '' END"
