"""The circuit breaker alone (a hand-moved clock), and through the deliverer across batches."""

import asyncio

from connectors.webhook import metrics
from connectors.webhook.breaker import Admission, BreakerPolicy, CircuitBreaker
from tests.unit.connectors.test_webhook_delivery import (
    ENCODE,
    FakeTime,
    Receiver,
    letters,
    message,
    receiving,
    trigger,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_failures_in_a_row_and_a_success_resets_the_count():
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=3, open_s=10), clock)
    for _ in range(2):
        assert breaker.admit() is Admission.PASS
        assert breaker.record(True, Admission.PASS) is False
    breaker.record(False, Admission.PASS)  # an answer (2xx or a final 4xx) resets the count
    assert [breaker.record(True, Admission.PASS) for _ in range(2)] == [False, False]
    assert not breaker.is_open and breaker.admit() is Admission.PASS
    assert breaker.record(True, Admission.PASS) is True  # the third failure in a row opens it
    assert breaker.is_open and breaker.admit() is Admission.REFUSE
    assert breaker.retry_in() == 10


def test_one_probe_after_open_s_closes_on_an_answer_or_reopens_on_a_failure():
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=1, open_s=10), clock)
    breaker.record(True, Admission.PASS)
    clock.now = 9.9
    assert breaker.admit() is Admission.REFUSE
    clock.now = 10.0
    assert breaker.admit() is Admission.PROBE
    assert breaker.admit() is Admission.WAIT  # one probe at a time; the others wait for its answer
    assert breaker.record(True, Admission.PROBE) is False  # still failing: open for another 10 s
    assert breaker.is_open and breaker.retry_in() == 10
    clock.now = 20.0
    assert breaker.admit() is Admission.PROBE
    breaker.record(False, Admission.PROBE)
    assert not breaker.is_open and breaker.admit() is Admission.PASS


def test_zero_failures_never_opens():
    breaker = CircuitBreaker(BreakerPolicy(failures=0, open_s=10), Clock())
    for _ in range(100):
        breaker.record(True, Admission.PASS)
    assert not breaker.is_open and breaker.admit() is Admission.PASS


async def _two_batches(scripts: dict, endpoints: list, first: list, second: list, fake: FakeTime,
                       between_s: float, recover: str | None = None):
    """Two batches through one deliverer (the breaker outlives a batch), ``between_s`` apart."""
    receiver = Receiver(scripts, fake)
    async with receiving(receiver, endpoints, 600) as (batch, _):
        one = await batch.process(first)
        seen_after_first = {path: len(r) for path, r in receiver.requests.items()}
        fake.now += between_s
        if recover:
            receiver.scripts[recover] = [200]
        two = await batch.process(second)
    return one, two, receiver, seen_after_first


ENDPOINTS = [
    {"name": "ok", "url": "http://127.0.0.1:PORT/ok", "rules": ["*"]},
    {"name": "down", "url": "http://127.0.0.1:PORT/down", "rules": ["*"], "max_attempts": 2,
     "backoff": {"base_s": 0.01, "max_s": 0.01}, "breaker": {"failures": 5, "open_s": 60}},
]


def test_a_dead_receiver_stops_costing_retries_and_later_batches_settle_at_once():
    fake = FakeTime()
    first = [message(n, ENCODE(trigger(n))) for n in range(20)]
    second = [message(n, ENCODE(trigger(n))) for n in range(20, 30)]
    one, two, receiver, seen = asyncio.run(_two_batches(
        {"/ok": [200], "/down": [503]}, [dict(e) for e in ENDPOINTS], first, second, fake, between_s=1))
    assert one.delivered == 20 and two.delivered == 10  # the healthy endpoint got everything
    reasons = [x["reason"] for _, x in letters(one)]
    assert len(reasons) == 20 and reasons.count("delivery_failed") >= 5  # five spent retries open it
    assert set(reasons) <= {"delivery_failed", "circuit_open"}
    assert seen["/down"] <= 20 * 2
    assert [x["reason"] for _, x in letters(two)] == ["circuit_open"] * 10
    assert len(receiver.requests["/down"]) == seen["/down"]  # an open circuit calls nobody
    assert metrics.CIRCUIT_OPEN.labels("down")._value.get() == 1
    assert metrics.CIRCUIT_OPEN.labels("ok")._value.get() == 0


def test_after_open_s_one_probe_goes_the_others_wait_for_it_and_all_are_delivered():
    fake = FakeTime()
    first = [message(n, ENCODE(trigger(n))) for n in range(20)]
    second = [message(n, ENCODE(trigger(n))) for n in range(20, 25)]
    opened_before = metrics.CIRCUIT_OPENED.labels("down")._value.get()
    one, two, receiver, seen = asyncio.run(_two_batches(
        {"/ok": [200], "/down": [503]}, [dict(e) for e in ENDPOINTS], first, second, fake, between_s=61,
        recover="/down"))
    assert len(one.deadletters) == 20
    assert metrics.CIRCUIT_OPENED.labels("down")._value.get() == opened_before + 1
    assert two.delivered == 10 and two.deadletters == []
    assert len(receiver.requests["/down"][seen["/down"]:]) == 5  # the probe, then the four that waited
    assert metrics.CIRCUIT_OPEN.labels("down")._value.get() == 0


def test_a_failed_probe_reopens_and_the_waiting_deliveries_are_dead_lettered_unsent():
    fake = FakeTime()
    first = [message(n, ENCODE(trigger(n))) for n in range(20)]
    second = [message(n, ENCODE(trigger(n))) for n in range(20, 25)]
    _, two, receiver, seen = asyncio.run(_two_batches(
        {"/ok": [200], "/down": [503]}, [dict(e) for e in ENDPOINTS], first, second, fake, between_s=61))
    assert len(receiver.requests["/down"]) == seen["/down"] + 2  # only the probe, its two attempts
    assert sorted(x["reason"] for _, x in letters(two)) == ["circuit_open"] * 4 + ["delivery_failed"]
    assert two.delivered == 5  # the healthy endpoint's


def test_a_busy_receiver_that_recovers_on_retry_never_opens_the_circuit():
    fake = FakeTime()
    endpoints = [{"name": "busy", "url": "http://127.0.0.1:PORT/busy", "rules": ["*"], "max_attempts": 8,
                  "backoff": {"base_s": 0.01, "max_s": 0.01}, "breaker": {"failures": 2, "open_s": 60}}]
    msgs = [message(n, ENCODE(trigger(n))) for n in range(12)]
    one, two, _, _ = asyncio.run(_two_batches(
        {"/busy": [503] * 10 + [200]}, endpoints, msgs[:6], msgs[6:], fake, between_s=0))
    assert (one.delivered, two.delivered) == (6, 6) and one.deadletters == two.deadletters == []


def test_final_refusals_mean_the_receiver_is_up_and_never_open_the_circuit():
    fake = FakeTime()
    endpoints = [{"name": "strict", "url": "http://127.0.0.1:PORT/strict", "rules": ["*"],
                  "breaker": {"failures": 2, "open_s": 60}}]
    msgs = [message(n, ENCODE(trigger(n))) for n in range(6)]
    one, two, receiver, _ = asyncio.run(_two_batches(
        {"/strict": [404]}, endpoints, msgs[:3], msgs[3:], fake, between_s=0))
    assert {x["reason"] for _, x in letters(one) + letters(two)} == {"rejected_4xx"}
    assert len(receiver.requests["/strict"]) == 6
