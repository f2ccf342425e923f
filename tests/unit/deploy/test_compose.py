from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_compose_has_the_stack_services_on_the_local_ports():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "collector", "worker"} <= set(services)
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:6379:6379" in services["redis"]["ports"]
    assert "8080:8080" in services["collector"]["ports"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert "--appendonly" in services["redis"]["command"]
    assert services["worker"]["environment"]["TOUCHSTREAM_BROKER"] == "kafka:9092"


def test_only_the_collector_is_published_beyond_this_machine_and_redis_needs_a_password():
    services = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert name == "collector" or port.startswith("127.0.0.1:"), (name, port)
    public = [p for p in services["collector"]["ports"] if not p.startswith("127.0.0.1:")]
    assert public == ["8080:8080"]  # events and API only: the ops port (metrics, OpenAPI) stays local
    ops_port = services["collector"]["environment"].get("TOUCHSTREAM_HTTP_OPS_PORT", "6065")
    assert f"127.0.0.1:{ops_port}:{ops_port}" in services["collector"]["ports"]
    assert "--requirepass" in services["redis"]["command"]
    assert "@redis:6379" in services["worker"]["environment"]["TOUCHSTREAM_REDIS_URL"]


def test_the_image_holds_every_shipped_package_and_runs_as_a_user():
    import tomllib

    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    packages = hatch["build"]["targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "deploy/Dockerfile").read_text().splitlines()
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile, package
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
