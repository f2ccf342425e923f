"""The local stack script's pure parts: messages and config rendering."""

import shutil

import pytest

from tests.conftest import load_stack_module

stack_module = load_stack_module()


def test_missing_java_gives_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "java" else "/usr/bin/" + name)
    monkeypatch.setattr(stack_module, "kafka_answers", lambda port: False)
    monkeypatch.setattr(stack_module, "port_open", lambda port: False)
    stack = stack_module.Stack(local=tmp_path, ports=stack_module.Ports(29092, 29093, 26379))
    with pytest.raises(stack_module.StackError, match=r"^Java 17 is missing: install it"):
        stack.start_kafka()


def test_missing_maven_gives_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "mvn" else "/usr/bin/" + name)
    monkeypatch.setattr(stack_module, "KAFKA_LIBS", tmp_path / "libs")
    with pytest.raises(stack_module.StackError, match=r"^Maven is missing: install it"):
        stack_module.ensure_kafka_libs()


def test_kafka_config_uses_the_stack_ports_and_data_dir(tmp_path):
    stack = stack_module.Stack(local=tmp_path, ports=stack_module.Ports(29092, 29093, 26379))
    stack.kafka_dir.mkdir(parents=True)
    text = stack._write_kafka_config().read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093" in text
    assert f"log.dirs={tmp_path / 'kafka' / 'data'}" in text
    assert "auto.create.topics.enable=false" in text


def test_a_cluster_id_never_reads_as_an_option(monkeypatch):
    """kafka-storage took a cluster id starting with '-' for an option (1 run in 64 failed)."""
    draws = iter([b"\xfb" + bytes(15), b"\x00" * 16])  # urlsafe base64 of 0xfb... starts with '-'
    monkeypatch.setattr(stack_module.uuid, "uuid4", lambda: type("U", (), {"bytes": next(draws)})())
    assert stack_module._kafka_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
    monkeypatch.undo()
    ids = [stack_module._kafka_cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
