"""The webhook sink on the shared loop: per-partition flushes, stop handling, config and stats."""

import socket

import pytest
import yaml

from connectors.webhook.batch import BatchResult
from connectors.webhook.config import parse_config
from connectors.webhook.sink import SinkStats, WebhookSink, consumer_config, run_webhook_sink
from streams.deadletters import DeadLetter
from streams.observer import StageObserver
from streams.records import Record
from streams.sinks import AsyncSinkDriver
from streams.stage_loop import Stopped
from touchstream.errors import ConfigError
from touchstream.settings import Settings

CONFIG = {"endpoints": [{"name": "a", "url": "http://127.0.0.1:1/", "secret": "x" * 20, "rules": ["*"]}]}


def msg(partition, offset):
    return Record(partition, offset, None, b"", "p.triggers")


class RecordingProducer:
    def __init__(self):
        self.sent = []

    def send_all(self, batches):
        self.sent.append({topic: len(items) for topic, items in batches.items()})


class FakeBatches:
    """BatchDelivery's interface: records each call; ``abandon`` makes a call report unfinished work."""

    def __init__(self, abandon=False):
        self.calls = []
        self.abandon = abandon

    async def process(self, messages):
        self.calls.append([(m.partition, m.offset) for m in messages])
        letters = [DeadLetter("webhook", "delivery_failed", "HTTP 503", messages[0], attempts=3)]
        return BatchResult(triggers=len(messages), delivered=len(messages) - 1, deadletters=letters,
                           abandoned=1 if self.abandon else 0)


class FakeDone:
    async def flush(self):
        return None


class OfflineSink(WebhookSink):
    """The sink with its Redis and HTTP replaced (``open`` builds nothing)."""

    def __init__(self, batches):
        super().__init__(Settings.from_env({}), parse_config(CONFIG))
        self.fake_batches = batches

    async def open(self):
        self._batches, self._done = self.fake_batches, FakeDone()


def test_each_partition_is_flushed_with_its_own_records_then_dead_letters_are_produced():
    sink, producer = OfflineSink(FakeBatches()), RecordingProducer()
    with AsyncSinkDriver(sink, producer, "p.deadletter", StageObserver()) as driver:
        driver([msg(0, 5), msg(1, 9), msg(0, 6)])
    assert sorted(sink.fake_batches.calls) == [[(0, 5), (0, 6)], [(1, 9)]]
    assert producer.sent == [{"p.deadletter": 2}]
    assert (sink.stats.triggers, sink.stats.delivered, sink.stats.dead_letters) == (3, 1, 2)


def test_unfinished_deliveries_stop_the_loop_without_dead_letters_or_a_commit():
    sink, producer = OfflineSink(FakeBatches(abandon=True)), RecordingProducer()
    with AsyncSinkDriver(sink, producer, "p.deadletter", StageObserver()) as driver, pytest.raises(Stopped):
        driver([msg(0, 1)])
    assert producer.sent == []
    assert sink._buffers == {}  # nothing left over for the next batch


def test_consumer_config_group_manual_commits_and_poll_interval():
    settings = Settings.from_env({}, app_id="shop")
    config = consumer_config(settings, parse_config({**CONFIG, "batch_deadline_s": 600}))
    assert config["group.id"] == "shop-webhook"
    assert config["enable.auto.commit"] is False and config["auto.offset.reset"] == "earliest"
    assert config["max.poll.interval.ms"] == (600 + 10 + 60) * 1000  # deadline + longest timeout + margin
    assert consumer_config(settings, parse_config(CONFIG))["max.poll.interval.ms"] == 300_000


def test_stats_add_up_and_render():
    stats = SinkStats()
    stats.add(BatchResult(triggers=10, deliveries=12, delivered=11, already_done=3,
                          deadletters=[DeadLetter("webhook", "delivery_failed", "x", msg(0, 1))]))
    stats.add(BatchResult(triggers=5, deliveries=5, delivered=5))
    stats.active_seconds, stats.seconds = 2.0, 5.0
    assert (stats.batches, stats.triggers, stats.delivered, stats.already_done, stats.dead_letters) == (
        2, 15, 16, 3, 1)
    assert "16 delivered" in stats.render() and "8 deliveries/s" in stats.render()


def test_a_busy_metrics_port_is_a_config_error_naming_the_setting(tmp_path):
    path = tmp_path / "hooks.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    path.chmod(0o600)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match="TOUCHSTREAM_WEBHOOK_METRICS_PORT"):
            run_webhook_sink(Settings.from_env({}), path, metrics_port=port)


def test_a_bad_config_fails_before_anything_starts(tmp_path):
    path = tmp_path / "hooks.yaml"
    path.write_text(yaml.safe_dump({"endpoints": [{"name": "a"}]}))
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.url"):
        run_webhook_sink(Settings.from_env({}), path)
