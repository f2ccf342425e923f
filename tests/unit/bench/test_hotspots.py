"""`make profile`'s reading of py-spy's collapsed samples."""

from __future__ import annotations

from pathlib import Path

from bench.hotspots import summarize


def test_own_and_inclusive_samples_per_frame(tmp_path: Path) -> None:
    raw = tmp_path / "samples.txt"
    raw.write_text(
        "run (loop.py:1);handle (w.py:2);decode (codec.py:3) 6\n"
        "run (loop.py:1);handle (w.py:2);decode (codec.py:3);read (codec.py:9) 3\n"
        "run (loop.py:1);sleep (loop.py:7) 1\n"
        "\n"
        "not a sample line\n"
    )
    total, by_own, by_inclusive = summarize(raw, top=3)
    assert total == 10
    assert by_own == [("decode (codec.py:3)", 6), ("read (codec.py:9)", 3), ("sleep (loop.py:7)", 1)]
    assert dict(by_inclusive)["run (loop.py:1)"] == 10
    assert dict(by_inclusive)["handle (w.py:2)"] == 9


def test_a_frame_repeated_in_one_stack_counts_once_inclusively(tmp_path: Path) -> None:
    raw = tmp_path / "samples.txt"
    raw.write_text("f (a.py:1);g (a.py:2);f (a.py:1) 4\n")
    total, _, by_inclusive = summarize(raw)
    assert total == 4 and dict(by_inclusive)["f (a.py:1)"] == 4
