from confluent_kafka.admin import AdminClient

from streams.clients import KAFKA_LOG, client_config, use_options
from streams.consumer import consumer_config
from streams.producers import producer_config


def test_every_client_config_carries_the_process_options_and_the_logger() -> None:
    use_options({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "https"})
    try:
        configs = (producer_config("b:9093"), consumer_config("b:9093", "g", "c"), client_config("b:9093"))
        for config in configs:
            assert config["bootstrap.servers"] == "b:9093"
            assert config["security.protocol"] == "SSL" and config["logger"] is KAFKA_LOG
        assert consumer_config("b:9093", "g", "c")["group.id"] == "g"  # a loop's own settings stay
        AdminClient(client_config("127.0.0.1:1"))  # librdkafka accepts the whole configuration
    finally:
        use_options({})
    assert "security.protocol" not in client_config("b:9092")
