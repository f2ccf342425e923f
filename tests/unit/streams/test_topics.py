from streams.topics import SPECS, Topics, new_topics
from touchstream.settings import Settings


def test_topic_names_follow_the_prefix():
    topics = Topics("acme")
    assert topics.raw == "acme.events.raw"
    assert topics.resolved == "acme.events.resolved"
    assert topics.deadletter == "acme.deadletter"


def test_new_topics_use_configured_partitions_except_fixed_ones():
    settings = Settings.from_env({}, topic_prefix="x", partitions=4)
    by_name = {t.topic: t for t in new_topics(settings)}
    assert set(by_name) == {f"x.{s.suffix}" for s in SPECS}
    assert by_name["x.events.raw"].num_partitions == 4
    assert by_name["x.deadletter"].num_partitions == 1
    assert by_name["x.identity.merges"].config["retention.ms"] == str(8 * 7 * 24 * 3600 * 1000)


def test_no_topic_outlives_the_erasure_suppression_window():
    # an event received before an erasure must not survive the suppression of its identifiers
    window_ms = Settings().erasure_suppression_s * 1000
    for topic in new_topics(Settings.from_env({}, topic_prefix="x")):
        retention = int(topic.config.get("retention.ms", 7 * 24 * 3600 * 1000))  # the broker's default
        assert 0 < retention <= window_ms, topic.topic
