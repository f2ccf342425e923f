"""`up` and `down` on an isolated second stack: down stops exactly what up started."""

from tests.conftest import load_stack_module

stack_module = load_stack_module()


def test_up_is_idempotent_and_down_closes_the_ports(stack, tmp_path):
    ports = stack_module.Ports(kafka=19092, controller=19093, redis=16379)
    other = stack_module.Stack(local=tmp_path / "stack", ports=ports)
    try:
        secret = tmp_path / "stack" / "pseudonym.secret"
        assert other.up(timeout=120) == ["redis: started", "kafka: started",
                                         f"pseudonym secret: written to {secret}"]
        assert stack_module.kafka_answers(19092) and stack_module.redis_answers(16379)
        written = secret.read_text()
        assert other.up(timeout=30) == ["redis: already running (ours)", "kafka: already running (ours)"]
        assert secret.read_text() == written  # never replaced: every OneID depends on it
        kafka_pid = int(other.kafka_pid_file.read_text())
        redis_pid = int(other.redis_pid_file.read_text())
    finally:
        lines = other.down()
    assert lines == ["kafka: stopped", "redis: stopped"]
    for port in (19092, 19093, 16379):
        assert not stack_module.port_open(port), port
    assert not stack_module._pid_alive(kafka_pid)
    assert not stack_module._pid_alive(redis_pid)
    assert other.down() == ["kafka: not running (ours)", "redis: not running (ours)"]
    # The project's own stack was not touched.
    assert stack_module.kafka_answers(9092) and stack_module.redis_answers(6379)
