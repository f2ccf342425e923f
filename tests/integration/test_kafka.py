from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.topics import Topics


def test_topics_exist_with_their_partitions_and_policy(settings):
    admin = AdminClient({"bootstrap.servers": settings.broker})
    topics = Topics.of(settings)
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[topics.raw].partitions) == 3
    assert len(meta[topics.deadletter].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.merges)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["retention.ms"].value == "-1"


def test_produce_and_consume_round_trip(settings, run_id):
    topic = f"{settings.topic_prefix}.roundtrip"
    admin = AdminClient({"bootstrap.servers": settings.broker})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all"})
    sent = {f"k{i}".encode(): f"{run_id}-{i}".encode() for i in range(50)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"rt-{run_id}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = {}
    for _ in range(120):
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.value().startswith(run_id.encode() + b"-"):
            got[msg.key()] = msg.value()
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent
