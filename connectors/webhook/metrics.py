"""Prometheus metrics of the webhook sink. The ``endpoint`` label is a configured name (bounded)."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "touchstream_webhook_deliveries_total",
    "Trigger deliveries by final outcome: delivered, already_done, rejected_4xx, delivery_failed, abandoned",
    ["endpoint", "outcome"],
)
ATTEMPTS = Counter(
    "touchstream_webhook_attempts_total",
    "HTTP attempts by result: 2xx, 3xx, 4xx, 408, 429, 5xx, timeout, network",
    ["endpoint", "result"],
)
REQUEST_SECONDS = Histogram(
    "touchstream_webhook_request_seconds", "Time of one HTTP attempt, answer or failure", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SECONDS = Histogram(
    "touchstream_webhook_batch_seconds", "Time from taking a batch of triggers to committing it",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TRIGGERS = Counter("touchstream_webhook_triggers_total", "Trigger records read from Kafka")
CIRCUIT_OPEN = Gauge(
    "touchstream_webhook_circuit_open",
    "1 while the endpoint's circuit breaker is open (deliveries dead-lettered as circuit_open), else 0",
    ["endpoint"],
)
CIRCUIT_OPENED = Counter(
    "touchstream_webhook_circuit_opened_total", "Times an endpoint's circuit breaker opened", ["endpoint"],
)


# Labelled children, looked up once: ``labels()`` costs more than the increment on the hot path.
@cache
def deliveries(endpoint: str, outcome: str) -> Counter:
    return DELIVERIES.labels(endpoint, outcome)


@cache
def attempts(endpoint: str, result: str) -> Counter:
    return ATTEMPTS.labels(endpoint, result)


@cache
def request_seconds(endpoint: str) -> Histogram:
    return REQUEST_SECONDS.labels(endpoint)
