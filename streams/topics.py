"""Every Kafka topic of the platform, with its partitions and cleanup policy.

Topics are created by the project (``touchstream topics create``), never by the broker's
auto-creation, so partition counts and retention are deliberate. Retention is part of the
erasure promise (README, "Erasure"): no topic keeps a record longer than the suppression
window (``TOUCHSTREAM_ERASURE_SUPPRESSION_S``, 8 weeks), so nothing received before an erasure
outlives the suppression of the person's identifiers. Topics without a retention here keep the
broker's default (7 days).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.clients import client_config
from touchstream.errors import StackError
from touchstream.settings import Settings

log = logging.getLogger(__name__)

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name suffix, whether it follows ``partitions``, and its config."""

    suffix: str
    doc: str
    partitions: int | None = None  # None: the configured event partitions
    config: tuple[tuple[str, str], ...] = (("cleanup.policy", "delete"),)


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("events.raw", "validated events from collector and importers, keyed by strongest identifier",
              config=(("cleanup.policy", "delete"), ("retention.ms", str(4 * WEEK_MS)))),
    TopicSpec("events.resolved", "events stamped with their OneID, keyed by OneID"),
    TopicSpec("identity.merges", "one record per merge of two OneIDs (it carries identifiers: finite, the "
              "lake keeps the history)",
              config=(("cleanup.policy", "delete"), ("retention.ms", str(8 * WEEK_MS)))),
    TopicSpec("identity.rejections", "identifiers not linked because a limit or guard said no"),
    TopicSpec("triggers", "real-time triggers for downstream services, keyed by OneID"),
    TopicSpec("segments", "segment_entered / segment_exited records (audiences), keyed by OneID"),
    TopicSpec("deadletter", "records that could not be decoded or processed, with reason and bytes",
              partitions=1, config=(("cleanup.policy", "delete"), ("retention.ms", str(8 * WEEK_MS)))),
)


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix; ``Topics(settings).raw`` etc."""

    prefix: str

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        return cls(settings.topic_prefix)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def raw(self) -> str:
        return self.name("events.raw")

    @property
    def resolved(self) -> str:
        return self.name("events.resolved")

    @property
    def merges(self) -> str:
        return self.name("identity.merges")

    @property
    def rejections(self) -> str:
        return self.name("identity.rejections")

    @property
    def triggers(self) -> str:
        return self.name("triggers")

    @property
    def segments(self) -> str:
        return self.name("segments")

    @property
    def deadletter(self) -> str:
        return self.name("deadletter")


def new_topics(settings: Settings) -> list[NewTopic]:
    """The NewTopic requests for every spec, under the settings' prefix and partitions."""
    topics = Topics.of(settings)
    return [
        NewTopic(
            topics.name(spec.suffix),
            num_partitions=spec.partitions or settings.partitions,
            replication_factor=1,
            config=dict(spec.config),
        )
        for spec in SPECS
    ]


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create every topic that does not exist yet; returns ``{name: "created"|"exists"}``."""
    refusals: list[str] = []  # what the broker said while we waited (authentication, TLS)
    admin = AdminClient(client_config(settings.broker, error_cb=lambda err: refusals.append(err.str())))
    outcome: dict[str, str] = {}
    futures = admin.create_topics(new_topics(settings), request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError._TIMED_OUT:  # librdkafka's own request timeout ran out first
                raise _no_answer(settings, admin, refusals, timeout) from None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StackError(f"Kafka at {settings.broker} refused to create {name}: "
                                 f"{exc.args[0].str()}") from None
            outcome[name] = "exists"
        except TimeoutError:
            raise _no_answer(settings, admin, refusals, timeout) from None
    _wait_for_leaders(admin, list(outcome), timeout)
    log.info("topics: %s", outcome)
    return outcome


def _no_answer(settings: Settings, admin: AdminClient, refusals: list[str], timeout: float) -> StackError:
    """No answer in time, whichever clock ran out: most often a refused login or handshake, which
    the error callbacks name."""
    admin.poll(0)  # serve the error callbacks waiting in the queue
    why = f": {refusals[-1]}" if refusals else ""
    return StackError(f"Kafka at {settings.broker} did not answer within {timeout:.0f}s{why}; check "
                      "TOUCHSTREAM_BROKER and TOUCHSTREAM_KAFKA_OPTIONS")


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """A created topic is usable once every partition has a leader; wait for that."""
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(timeout=timeout).topics
        if all(
            name in meta and meta[name].error is None and meta[name].partitions
            and all(p.leader >= 0 and p.error is None for p in meta[name].partitions.values())
            for name in names
        ):
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics without leaders after {timeout:.0f}s: {names}")
        time.sleep(0.1)
