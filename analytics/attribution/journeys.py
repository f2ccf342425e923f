"""Journeys: every person's conversions and touches in one order, as arrays every model reads.

The scan (``analytics.touches.classified_rows``) returns conversions and touches in no order.
One sort lays each person's events out together: by person, then time, then touches before
conversions of the same millisecond (a touch at a conversion's own moment precedes it), then
source and messageId (the same order everywhere, so every model is deterministic). Everything
after is a pass over these arrays (NumPy): a touch repeating the person's previous touch (same
channel and campaign) within the session gap is the same visit, and dropped; a conversion's
touches are the run of touches before it back to the lookback (``pairs``); a touch's next
conversion is the first conversion after it (``markov``).

Why arrays and not SQL: at 10M events on 2 cores the window functions that did this (the
visits, the numbering of each conversion's touches, the Markov chain's lost journeys and its
ASOF join) sorted the same 7M touches four times, 15 s of CPU; one sort and linear passes take
about 3 s.

``build_journeys`` also registers the journeys as tables for SQL (the tests, a debugging
session): ``_a_touches`` (person, ts, source, message_id, channel, campaign) and
``_a_conversions`` (conv: 1..n in time order, person, ts, source, message_id, revenue, counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.channels import ChannelRules
from analytics.touches import Conversion, classified_rows

TOUCHES = "_a_touches"
CONVERSIONS = "_a_conversions"
#: Journey order: person, time, touches before conversions, then source and messageId.
_JOURNEY = [(name, "ascending") for name in ("person", "ts", "is_conv", "source", "message_id")]


@dataclass(frozen=True)
class Rows:
    """The scan's rows (``analytics.touches.classified_rows``) as arrays, converted once and
    shared by every shard: ``channel`` a position in ``channels`` and ``campaign`` one in
    ``campaigns`` (-1: a conversion, or no campaign); ``revenue`` and ``counted`` (inside the
    conversion's since..until) the conversions'."""

    table: pa.Table
    ts: np.ndarray
    is_conv: np.ndarray
    revenue: np.ndarray
    counted: np.ndarray
    channel: np.ndarray
    campaign: np.ndarray
    channels: tuple[str, ...]
    campaigns: pa.Array

    @classmethod
    def of(cls, table: pa.Table, rules: ChannelRules) -> Rows:
        campaigns = table.column("campaign").combine_chunks().dictionary_encode()
        return cls(table, table.column("ts").to_numpy(), table.column("is_conv").to_numpy(),
                   table.column("revenue").fill_null(0.0).to_numpy(),
                   table.column("counted").fill_null(False).to_numpy(),
                   table.column("channel").fill_null(-1).to_numpy().astype(np.int64),
                   campaigns.indices.fill_null(-1).to_numpy().astype(np.int64), rules.channels,
                   campaigns.dictionary)


@dataclass(frozen=True)
class Journeys:
    """Conversions and touches (visits collapsed), one entry per event in journey order:
    ``person`` codes ascending (equal: the same person), ``rows`` the events' positions in
    ``source``, and their time, kind, channel and campaign."""

    person: np.ndarray
    ts: np.ndarray
    is_conv: np.ndarray
    channel: np.ndarray
    campaign: np.ndarray
    rows: np.ndarray
    source: Rows

    def keys(self, by: str) -> tuple[np.ndarray, list[str]]:
        """Each event's credited key as a position in the returned names (-1: a conversion): its
        channel, or (``campaign``) its campaign, a touch without one as ``(channel)``."""
        channels = self.source.channels
        if by == "channel":
            return self.channel, list(channels)
        campaigns = self.source.campaigns.to_pylist()
        names = [*campaigns, *(f"({channel})" for channel in channels)]
        code = np.where(self.campaign >= 0, self.campaign, len(campaigns) + self.channel)
        # a campaign named like "(email)" and email touches without a campaign are one key
        unique: dict[str, int] = {}
        same = np.array([unique.setdefault(name, len(unique)) for name in names] or [0], np.int64)
        return np.where(self.is_conv, -1, same[np.maximum(code, 0)]), list(unique)


def arrange(rows: Rows, at: np.ndarray, rules: ChannelRules) -> Journeys:
    """The journeys of the people whose rows are ``at`` (positions in ``rows``: all of a
    person's, or none)."""
    person = rows.table.column("person").take(pa.array(at)).combine_chunks().dictionary_encode()
    order = _journey_order(rows, at, person.indices.fill_null(-1).to_numpy())
    at = at[order]
    person_codes = person.indices.fill_null(-1).to_numpy()[order]
    ts, is_conv, channel, campaign = rows.ts[at], rows.is_conv[at], rows.channel[at], rows.campaign[at]
    kept = _visits(person_codes, ts, is_conv, (campaign + 1) * (len(rules.channels) + 1) + channel,
                   rules.session_gap_ms)
    if not kept.all():
        person_codes, ts, is_conv = person_codes[kept], ts[kept], is_conv[kept]
        channel, campaign, at = channel[kept], campaign[kept], at[kept]
    return Journeys(person_codes, ts, is_conv, channel, campaign, at, rows)


def build_journeys(con: duckdb.DuckDBPyConnection, conversion: Conversion, rules: ChannelRules) -> Journeys:
    """The journeys of every person the lake knows, also registered on ``con`` as the tables
    ``_a_touches`` and ``_a_conversions``."""
    rows = Rows.of(classified_rows(con, conversion, rules), rules)
    found = arrange(rows, np.arange(rows.table.num_rows), rules)
    touch = ~found.is_conv
    touches = rows.table.take(pa.array(found.rows[touch]))
    channel = pa.array(rules.channels, pa.string()).take(pa.array(found.channel[touch]))
    con.register(TOUCHES, touches.select(["person", "ts", "source", "message_id"])
                 .append_column("channel", channel).append_column("campaign", touches.column("campaign")))
    conversions = rows.table.take(pa.array(found.rows[found.is_conv]))
    in_time = [(name, "ascending") for name in ("ts", "source", "message_id")]
    conversions = conversions.take(pc.sort_indices(conversions, in_time))
    number = pa.array(np.arange(1, conversions.num_rows + 1, dtype=np.int64))
    columns = ["person", "ts", "source", "message_id", "revenue", "counted"]
    con.register(CONVERSIONS, conversions.select(columns).add_column(0, "conv", number))
    return found


def _journey_order(rows: Rows, at: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The order of ``at`` (with its ``person`` codes) in journeys: sorted on (person, time) as
    integers, then the few events that share both sorted again on the whole key (whole-key
    sorts of the strings cost 3x more)."""
    ts = rows.ts[at]
    if len(at) == 0:
        return np.arange(0)
    low, span = int(ts.min()), int(ts.max() - ts.min()) + 1
    if int(person.max()) < (1 << 62) // span:  # (person, time) as one integer
        order = np.argsort(person.astype(np.int64) * span + (ts - low))
    else:
        order = np.lexsort((ts, person))
    p, t = person[order], ts[order]
    tied = (p[1:] == p[:-1]) & (t[1:] == t[:-1])
    if tied.any():
        tie = np.flatnonzero(np.append(tied, False) | np.insert(tied, 0, False))
        events = pa.array(at[order[tie]])
        ties = pa.table({"person": p[tie], "ts": t[tie], "is_conv": rows.is_conv[at[order[tie]]],
                         "source": rows.table.column("source").take(events),
                         "message_id": rows.table.column("message_id").take(events)})
        order[tie] = order[tie][pc.sort_indices(ties, _JOURNEY).to_numpy()]
    return order


def _visits(person: np.ndarray, ts: np.ndarray, is_conv: np.ndarray, kind: np.ndarray,
            gap_ms: int) -> np.ndarray:
    """Which events stay: all but a touch repeating the person's previous touch (same ``kind``:
    channel and campaign) within ``gap_ms`` of it."""
    touches = np.flatnonzero(~is_conv)
    p, t, k = person[touches], ts[touches], kind[touches]
    repeat = (p[1:] == p[:-1]) & (k[1:] == k[:-1]) & (t[1:] - t[:-1] <= gap_ms)
    kept = np.ones(len(person), dtype=bool)
    kept[touches[1:][repeat]] = False
    return kept
