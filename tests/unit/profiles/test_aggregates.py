import math
import random

import pytest

from profiles import aggregates as agg
from profiles.durations import DAY_MS, HOUR_MS, WEEK_MS, format_duration, parse_duration


def test_durations_parse_and_format():
    assert parse_duration("180s") == 180_000
    assert parse_duration("7d") == 7 * DAY_MS
    assert parse_duration("1.5h") == 90 * 60_000
    assert parse_duration(30) == 30_000
    assert format_duration(90 * DAY_MS) == "90d"
    for bad in ("7 days", "", "-1s", True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_bucket_size_is_chosen_per_window():
    assert agg.auto_bucket_ms(7 * DAY_MS) == HOUR_MS
    assert agg.auto_bucket_ms(90 * DAY_MS) == DAY_MS
    assert agg.auto_bucket_ms(365 * DAY_MS) == WEEK_MS
    assert agg.auto_bucket_ms(0) == 0
    assert agg.bucket_count(7 * DAY_MS, HOUR_MS) == 168
    assert agg.bucket_count(365 * DAY_MS, WEEK_MS) == 53  # rounded up: a window never shrinks


def test_window_is_the_last_n_buckets_ending_with_the_current_one():
    t = 1_700_000_000_000
    lo, hi = agg.window_range(t, 7 * DAY_MS, HOUR_MS)
    assert hi == t // HOUR_MS
    assert hi - lo + 1 == 168
    # the window covers between W - B and W of time
    assert (t - lo * HOUR_MS) <= 7 * DAY_MS
    assert (t - lo * HOUR_MS) > 7 * DAY_MS - HOUR_MS


def test_value_as_of_counts_only_buckets_inside_the_window():
    t = 1_700_000_000_000
    buckets = {}
    for ts in (t - 8 * DAY_MS, t - 6 * DAY_MS, t - 1000, t, t + HOUR_MS):  # too old, in, in, in, future
        idx = agg.bucket_index(ts, HOUR_MS)
        buckets[idx] = buckets.get(idx, 0) + 1
    assert agg.value_as_of("count", buckets, t, 7 * DAY_MS, HOUR_MS) == 3
    assert agg.value_as_of("count", {}, t, 7 * DAY_MS, HOUR_MS) == 0
    # as of later, the event 6 days before t has left the window
    assert agg.value_as_of("count", buckets, t + 2 * DAY_MS, 7 * DAY_MS, HOUR_MS) == 3


def test_keep_from_allows_for_late_events():
    t = 1_700_000_000_000
    keep = agg.keep_from(t, HOUR_MS, 7 * DAY_MS, HOUR_MS)
    late = t - HOUR_MS  # the oldest accepted event still reads its whole window
    assert keep == agg.window_range(late, 7 * DAY_MS, HOUR_MS)[0]
    assert agg.keep_from(t, HOUR_MS, 0, 0) is None


def test_combine_per_kind():
    assert agg.combine("n", 2, 3) == 5
    assert agg.combine("mn", 2, 3) == 2 and agg.combine("mx", 2, 3) == 3
    assert agg.combine("f", (5, '"a"'), (3, '"b"')) == (3, '"b"')
    assert agg.combine("l", (5, '"a"'), (3, '"b"')) == (5, '"a"')
    assert agg.combine("u", 0b01, 0b10) == 0b11
    assert agg.combine("n", None, 7) == 7


def test_sums_round_like_lua():
    total = None
    for v in (0.1, 0.2, 0.3):
        total = agg.combine("n", total, v)
    assert agg.format_number(total) == "0.6"
    assert agg.format_number(3.0) == "3"
    assert agg.format_number(150000.5) == "150000.5"


def test_encode_decode_round_trip():
    for kind, value in (("n", 12), ("n", 1.25), ("f", (1_700_000_000_000, '"x"')), ("u", 0xF0), ("mx", 9)):
        assert agg.decode(kind, agg.encode(kind, value)) == value
    assert agg.to36(0) == "0" and int(agg.to36(1_700_000_000_000), 36) == 1_700_000_000_000


def test_first_last_and_unique_fold():
    first = agg.contribution("f", "o-1", 10)
    later = agg.contribution("f", "o-2", 20)
    assert agg.fold("first", [later, first]) == "o-1"
    assert agg.fold("last", [first, later]) == "o-2"
    assert agg.fold("first", []) is None


@pytest.mark.parametrize("distinct", [1, 5, 20, 60])
def test_unique_estimate_is_close(distinct):
    rng = random.Random(distinct)
    values = [f"feature-{rng.random()}" for _ in range(distinct)]
    bitmap = 0
    for v in values * 3:  # repeats do not count
        bitmap = agg.combine("u", bitmap, agg.contribution("u", v, 0))
    estimate = agg.unique_estimate(bitmap)
    assert abs(estimate - distinct) <= max(1, math.ceil(distinct * 0.35))
