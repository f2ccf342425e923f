"""Lake file names carry their offset range; covered files are what readers ignore."""

from __future__ import annotations

from pathlib import Path

from connectors.lake import layout
from connectors.lake.layout import Span


def test_a_file_name_round_trips_and_sorts_by_offset() -> None:
    span = Span("ts.events.resolved", 3, 17, 4021)
    assert span.file_name == "ts.events.resolved+3+00000000000000000017+00000000000000004021.parquet"
    assert layout.parse_file_name(span.file_name) == span
    names = sorted(Span("t", 0, a, a + 9).file_name for a in (100, 9, 20))
    assert [layout.parse_file_name(n).first for n in names] == [9, 20, 100]  # type: ignore[union-attr]


def test_temporaries_and_strangers_are_not_lake_files() -> None:
    assert layout.parse_file_name(".t+0+00000000000000000001+00000000000000000002.parquet.roll.tmp") is None
    assert layout.parse_file_name("part-0.parquet") is None
    assert layout.parse_spool_dir_name("ts.triggers+12") == ("ts.triggers", 12)
    assert layout.parse_spool_dir_name(".lock") is None


def test_a_file_inside_another_files_range_is_covered() -> None:
    folder = Path("/lake/events/event_date=2026-12-01")
    merged = (folder / "m", Span("t", 0, 0, 99))
    inputs = [(folder / "a", Span("t", 0, 0, 49)), (folder / "b", Span("t", 0, 50, 99))]
    other_partition = (folder / "c", Span("t", 1, 0, 49))
    other_folder = (Path("/lake/events/event_date=2026-12-02") / "a", Span("t", 0, 0, 49))
    everything = [merged, *inputs, other_partition, other_folder]
    assert layout.live(everything) == sorted([merged, other_partition, other_folder])
    assert sorted(layout.covered(everything)) == sorted(p for p, _ in inputs)


def test_next_offsets_are_past_the_last_file_of_each_partition(tmp_path: Path) -> None:
    for day, span in (("2026-12-01", Span("t", 0, 0, 9)), ("2026-12-02", Span("t", 0, 0, 9)),
                      ("2026-12-02", Span("t", 0, 10, 30)), ("2026-12-01", Span("t", 2, 5, 5))):
        folder = layout.date_dir(tmp_path, "events", day)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / span.file_name).write_bytes(b"")
    assert layout.next_offsets(tmp_path, "events", "t") == {0: 31, 2: 6}
    assert layout.next_offsets(tmp_path, "events", "other") == {}
