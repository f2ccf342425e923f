from confluent_kafka.admin import AdminClient, ConfigResource

from streams.topics import Topics


def test_topics_exist_with_their_partitions_and_policy(settings):
    admin = AdminClient({"bootstrap.servers": settings.broker})
    topics = Topics.of(settings)
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[topics.raw].partitions) == 3
    assert len(meta[topics.deadletter].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.merges)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    # merge records carry identifiers: kept 8 weeks, part of the erasure promise (README "Erasure")
    assert config["retention.ms"].value == str(8 * 7 * 24 * 3600 * 1000)

