"""Keyed pseudonyms: HMAC-SHA256 of type:value, a secret from the settings or the stack's file."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import pytest

from touchstream.errors import ConfigError
from touchstream.pseudonyms import Pseudonyms, ensure_secret_file
from touchstream.settings import Settings

SECRET = "a" * 40
OTHER = "b" * 40


def test_a_pseudonym_is_the_hmac_of_type_and_value_under_the_secret() -> None:
    expected = hmac.new(SECRET.encode(), b"phone:+8613912345678", hashlib.sha256).hexdigest()
    assert Pseudonyms(SECRET).of("phone", "+8613912345678") == expected
    assert Pseudonyms(SECRET).of_any("phone", "+8613912345678") == expected


def test_the_pseudonym_depends_on_the_secret_and_on_the_type() -> None:
    ours, theirs = Pseudonyms(SECRET), Pseudonyms(OTHER)
    assert ours.of("email", "a@qq.com") != theirs.of("email", "a@qq.com")
    assert ours.of("email", "u1") != ours.of("user_id", "u1")
    assert ours.of("email", "a@qq.com") != hashlib.sha256(b"a@qq.com").hexdigest()


def test_junk_values_still_get_a_pseudonym() -> None:
    pseudonyms = Pseudonyms(SECRET)
    assert len(pseudonyms.of_any("email", "\udc80")) == 64  # a lone surrogate
    assert len(pseudonyms.of_any("email", 12)) == 64


def test_a_short_secret_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="TOUCHSTREAM_PSEUDONYM_SECRET must be at least 32"):
        Pseudonyms("short")
    with pytest.raises(ConfigError, match="TOUCHSTREAM_PSEUDONYM_SECRET_PREVIOUS"):
        Pseudonyms(SECRET, "short")


def test_while_rotating_every_gives_the_current_then_the_previous_pseudonym() -> None:
    rotating = Pseudonyms(OTHER, previous=SECRET)
    assert rotating.rotating
    assert rotating.every("email", "a@qq.com") == (Pseudonyms(OTHER).of("email", "a@qq.com"),
                                                   Pseudonyms(SECRET).of("email", "a@qq.com"))
    assert Pseudonyms(SECRET).every("email", "a@qq.com") == (Pseudonyms(SECRET).of("email", "a@qq.com"),)
    assert not Pseudonyms(SECRET, previous=SECRET).rotating  # the same secret twice is no rotation


def test_the_secret_comes_from_the_setting_or_else_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.secret"
    path.write_text(SECRET + "\n")
    from_file = Pseudonyms.from_settings(Settings(pseudonym_secret_file=str(path)))
    assert from_file.of("email", "a@qq.com") == Pseudonyms(SECRET).of("email", "a@qq.com")
    from_setting = Pseudonyms.from_settings(Settings(pseudonym_secret=OTHER, pseudonym_secret_file=str(path)))
    assert from_setting.of("email", "a@qq.com") == Pseudonyms(OTHER).of("email", "a@qq.com")


def test_no_secret_at_all_is_a_config_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no pseudonym secret: set TOUCHSTREAM_PSEUDONYM_SECRET"):
        Pseudonyms.from_settings(Settings(pseudonym_secret_file=str(tmp_path / "missing")))


def test_the_settings_never_show_the_secret() -> None:
    assert SECRET not in repr(Settings(pseudonym_secret=SECRET, pseudonym_secret_previous=OTHER))
    assert "rotating" in repr(Pseudonyms(SECRET)) and SECRET not in repr(Pseudonyms(SECRET))


def test_the_stack_secret_is_written_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "local" / "pseudonym.secret"
    assert ensure_secret_file(path)
    first = path.read_text()
    assert len(first.strip()) == 64 and int(first, 16) > 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not ensure_secret_file(path)
    assert path.read_text() == first
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_processes_racing_to_write_the_secret_all_end_with_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.secret"
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def race() -> None:
        barrier.wait()
        ensure_secret_file(path)
        seen.append(path.read_text())  # what this process would key its OneIDs with

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [path.read_text()] * 8  # nobody's secret was replaced after they read it
    assert list(tmp_path.iterdir()) == [path]
