import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from connectors.webhook.config import Backoff
from connectors.webhook.retry import Verdict, backoff_delay, classify, nominal_delay, parse_retry_after


def test_nominal_schedule_doubles_up_to_the_cap():
    backoff = Backoff(base_s=0.5, max_s=30)
    assert [nominal_delay(n, backoff) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_huge_attempt_numbers_do_not_overflow():
    assert nominal_delay(10_000, Backoff(1, 60)) == 60


def test_jitter_stays_between_half_and_full_nominal_and_varies():
    backoff = Backoff(base_s=1, max_s=100)
    rng = random.Random(7)
    for attempt in range(1, 8):
        nominal = nominal_delay(attempt, backoff)
        delays = [backoff_delay(attempt, backoff, rng) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > nominal / 4  # really jittered, not a constant


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, Verdict.DELIVERED), (201, Verdict.DELIVERED), (204, Verdict.DELIVERED),
     (408, Verdict.RETRY), (429, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY),
     (599, Verdict.RETRY), (400, Verdict.REJECTED), (401, Verdict.REJECTED), (404, Verdict.REJECTED),
     (410, Verdict.REJECTED), (422, Verdict.REJECTED), (301, Verdict.REJECTED), (302, Verdict.REJECTED)],
)
def test_classify(status, verdict):
    assert classify(status) is verdict


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30)
    earlier = format_datetime(datetime(2024, 5, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3"])
def test_retry_after_unusable_values_are_none(value):
    assert parse_retry_after(value) is None
