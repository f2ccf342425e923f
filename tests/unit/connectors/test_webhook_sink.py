import socket

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException

from connectors.webhook.batch import BatchResult, TriggerMessage
from connectors.webhook.config import parse_config
from connectors.webhook.sink import SinkStats, _commit, consumer_config, run_webhook_sink
from touchstream.errors import ConfigError
from touchstream.settings import Settings

CONFIG = {"endpoints": [{"name": "a", "url": "http://127.0.0.1:1/", "secret": "x" * 20, "rules": ["*"]}]}


class RecordingConsumer:
    def __init__(self, fail=False):
        self.commits = []
        self.fail = fail

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        if self.fail:
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        self.commits.append(sorted((tp.topic, tp.partition, tp.offset) for tp in offsets))


def msg(partition, offset):
    return TriggerMessage("p.triggers", partition, offset, None, b"")


def test_commit_moves_each_partition_past_its_last_message():
    consumer = RecordingConsumer()
    _commit(consumer, [msg(0, 5), msg(1, 9), msg(0, 7), msg(0, 6), msg(2, 0)])
    assert consumer.commits == [[("p.triggers", 0, 8), ("p.triggers", 1, 10), ("p.triggers", 2, 1)]]


def test_a_refused_commit_is_logged_not_raised(caplog):
    _commit(RecordingConsumer(fail=True), [msg(0, 1)])
    assert "commit failed" in caplog.text


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
                          deadletters=[(None, b"x")]))
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
