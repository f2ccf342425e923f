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
class Journeys:
    """Conversions and touches (visits collapsed), one entry per event in journey order.

    ``person`` codes are ascending (equal: the same person); ``channel`` is a position in
    ``channels`` and ``campaign`` one in ``campaigns`` (-1: a conversion, or no campaign);
    ``revenue`` and ``counted`` (inside the conversion's since..until) are the conversions'.
    ``rows`` are the events' rows in ``scan``, for the SQL tables."""

    person: np.ndarray
    ts: np.ndarray
    is_conv: np.ndarray
    revenue: np.ndarray
    counted: np.ndarray
    channel: np.ndarray
    campaign: np.ndarray
    channels: tuple[str, ...]
    campaigns: pa.Array
    rows: np.ndarray
    scan: pa.Table

    def keys(self, by: str) -> tuple[np.ndarray, list[str]]:
        """Each event's credited key as a position in the returned names (-1: a conversion): its
        channel, or (``campaign``) its campaign, a touch without one as ``(channel)``."""
        if by == "channel":
            return self.channel.astype(np.int64), list(self.channels)
        campaigns = self.campaigns.to_pylist()
        names = [*campaigns, *(f"({channel})" for channel in self.channels)]
        code = np.where(self.campaign >= 0, self.campaign, len(campaigns) + self.channel.astype(np.int64))
        # a campaign named like "(email)" and email touches without a campaign are one key
        unique: dict[str, int] = {}
        same = np.array([unique.setdefault(name, len(unique)) for name in names] or [0], np.int64)
        return np.where(self.is_conv, -1, same[np.maximum(code, 0)]), list(unique)


def arrange(scan: pa.Table, rules: ChannelRules) -> Journeys:
    """The journeys of the people of ``scan`` (rows of ``analytics.touches.classified_rows``)."""
    person = _codes(scan.column("person"))
    ts = scan.column("ts").to_numpy()
    is_conv = scan.column("is_conv").to_numpy()
    order = _journey_order(scan, person, ts, is_conv)
    campaign = scan.column("campaign").combine_chunks().dictionary_encode()
    channel = scan.column("channel").fill_null(-1).to_numpy()[order].astype(np.int64)
    codes = campaign.indices.fill_null(-1).to_numpy()[order].astype(np.int64)
    person, ts, is_conv = person[order], ts[order], is_conv[order]
    kept = _visits(person, ts, is_conv, (codes + 1) * (len(rules.channels) + 1) + channel,
                   rules.session_gap_ms)
    if not kept.all():
        order, person, ts, is_conv = order[kept], person[kept], ts[kept], is_conv[kept]
        channel, codes = channel[kept], codes[kept]
    return Journeys(person, ts, is_conv,
                    scan.column("revenue").fill_null(0.0).to_numpy()[order],
                    scan.column("counted").fill_null(False).to_numpy()[order],
                    channel, codes, rules.channels, campaign.dictionary, order, scan)


def build_journeys(con: duckdb.DuckDBPyConnection, conversion: Conversion, rules: ChannelRules) -> Journeys:
    """The journeys of every person the lake knows, also registered on ``con`` as the tables
    ``_a_touches`` and ``_a_conversions``."""
    found = arrange(classified_rows(con, conversion, rules), rules)
    touch = ~found.is_conv
    rows = found.scan.take(pa.array(found.rows[touch]))
    channel = pa.array(found.channels, pa.string()).take(pa.array(found.channel[touch]))
    con.register(TOUCHES, rows.select(["person", "ts", "source", "message_id"])
                 .append_column("channel", channel).append_column("campaign", rows.column("campaign")))
    conversions = found.scan.take(pa.array(found.rows[found.is_conv]))
    in_time = [(name, "ascending") for name in ("ts", "source", "message_id")]
    conversions = conversions.take(pc.sort_indices(conversions, in_time))
    number = pa.array(np.arange(1, conversions.num_rows + 1, dtype=np.int64))
    columns = ["person", "ts", "source", "message_id", "revenue", "counted"]
    con.register(CONVERSIONS, conversions.select(columns).add_column(0, "conv", number))
    return found


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Each value as an integer, equal for equal values (the order of first appearance)."""
    return column.combine_chunks().dictionary_encode().indices.fill_null(-1).to_numpy()


def _journey_order(scan: pa.Table, person: np.ndarray, ts: np.ndarray, is_conv: np.ndarray) -> np.ndarray:
    """The rows in journey order: sorted on (person, time) as integers, then the few rows that
    share both sorted again on the whole key (whole-key sorts of the strings cost 3x more)."""
    order = np.lexsort((ts, person))
    p, t = person[order], ts[order]
    tied = (p[1:] == p[:-1]) & (t[1:] == t[:-1])
    if tied.any():
        at = np.flatnonzero(np.append(tied, False) | np.insert(tied, 0, False))
        rows = order[at]
        ties = pa.table({"person": p[at], "ts": t[at], "is_conv": is_conv[rows],
                         "source": scan.column("source").take(rows),
                         "message_id": scan.column("message_id").take(rows)})
        order[at] = rows[pc.sort_indices(ties, _JOURNEY).to_numpy()]
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
