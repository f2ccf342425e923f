from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_compose_has_the_stack_services_on_the_local_ports():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "collector", "worker"} <= set(services)
    assert "9092:9092" in services["kafka"]["ports"]
    assert "6379:6379" in services["redis"]["ports"]
    assert "8080:8080" in services["collector"]["ports"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert "--appendonly" in services["redis"]["command"]
    assert services["worker"]["environment"]["TOUCHSTREAM_BROKER"] == "kafka:9092"
