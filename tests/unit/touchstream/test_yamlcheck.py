import pytest

from touchstream.errors import ConfigError
from touchstream.yamlcheck import YamlReader, read_yaml


def test_refusals_name_the_file_and_the_dotted_key() -> None:
    reader = YamlReader("webhook config", "hooks.yaml")
    expected = r"^webhook config hooks.yaml: endpoints\.x: unknown key \(allowed: a, b\)$"
    with pytest.raises(ConfigError, match=expected):
        reader.mapping({"x": 1}, "endpoints", frozenset({"a", "b"}))
    with pytest.raises(ConfigError, match=r"hooks.yaml: \(top level\): must be a mapping, got list"):
        reader.mapping([], "")
    with pytest.raises(ConfigError, match="keys must be strings"):
        reader.mapping({1: "a"}, "types")
    assert reader.mapping(None, "storage", optional=True) == {}


@pytest.mark.parametrize("value", [0, True, 1.5, "3", None])
def test_a_whole_number_is_an_int_in_bounds(value: object) -> None:
    with pytest.raises(ConfigError, match="must be a whole number >= 1"):
        YamlReader("rules", "r.yaml").whole(value, "max")


def test_bounds_and_seconds() -> None:
    reader = YamlReader("rules", "r.yaml")
    assert reader.whole(5, "max", maximum=5) == 5
    with pytest.raises(ConfigError, match="must be at most 5, got 6"):
        reader.whole(6, "max", maximum=5)
    assert reader.seconds(2, "t") == 2.0
    with pytest.raises(ConfigError, match="seconds > 0"):
        reader.seconds(0, "t")


def test_unreadable_and_invalid_files_name_the_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^rules .*missing.yaml: cannot be read"):
        read_yaml(tmp_path / "missing.yaml", "rules")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(bad, "rules")
