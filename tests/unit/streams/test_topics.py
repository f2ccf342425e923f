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
    assert by_name["x.identity.merges"].config["retention.ms"] == "-1"
