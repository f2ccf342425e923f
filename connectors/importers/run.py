"""``touchstream import FILE``: read rows in chunks, map them to messages, hand each chunk on.

The caller's ``submit`` does what the collector does (validation, dedup, produce), so an
imported row and an HTTP event are the same thing downstream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import tzinfo
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from connectors.importers.mapping import RowMapper
from connectors.importers.readers import RawRow, RowReader, open_reader
from connectors.importers.summary import ImportSummary
from connectors.outcome import Outcome
from connectors.validation import Limits
from touchstream.errors import TouchstreamError, ValidationError
from touchstream.pseudonyms import Pseudonyms

log = logging.getLogger(__name__)

Submit = Callable[[list[dict]], Sequence[Outcome]]


def import_file(
    path: Path,
    *,
    kind: str,
    mapping: Mapping[str, str],
    submit: Submit,
    batch_size: int = 500,
    progress: bool = True,
    limits: Limits | None = None,
    derive_anonymous_id: bool = True,
    timezone: tzinfo | None = None,
    encoding: str = "auto",
    pseudonyms: Pseudonyms,
) -> ImportSummary:
    """Import ``path`` as ``kind`` (contacts|orders|events); every row is counted in the summary.

    ``submit`` receives up to ``batch_size`` Segment-spec messages and returns one
    :class:`Outcome` per message (``index`` = position in the list). ``limits`` supplies the
    custom identifier types and phone region used to derive an anonymousId for rows that
    have neither userId nor anonymousId (``derive_anonymous_id=False`` leaves them to be rejected).
    ``timezone``: where times without an offset were written (a Chinese CRM: Asia/Shanghai);
    ``encoding`` of text files (``auto``: UTF-8 or GB18030); ``pseudonyms`` key the derived ids.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    limits = limits or Limits()
    mapper = RowMapper(
        kind, mapping, file_name=path.name, custom_types=limits.custom_types,
        default_region=limits.default_region, derive_anonymous_id=derive_anonymous_id, timezone=timezone,
        pseudonyms=pseudonyms,
    )
    summary = ImportSummary(path=path, kind=kind)
    started = time.perf_counter()
    with open_reader(path, encoding) as reader:
        mapper.check_columns(reader.columns)
        with _progress_bar(progress, reader, summary) as advance:
            for chunk in reader.chunks(batch_size):
                _import_chunk(chunk, mapper, submit, summary)
                advance()
    summary.elapsed_s = time.perf_counter() - started
    log.info("import of %s (%s): %d rows, %d accepted, %d duplicates, %d rejected",
             path.name, kind, summary.rows, summary.accepted, summary.duplicates, summary.rejected)
    return summary


def _import_chunk(chunk: list[RawRow], mapper: RowMapper, submit: Submit, summary: ImportSummary) -> None:
    messages: list[dict] = []
    row_numbers: list[int] = []
    for raw in chunk:
        if raw.data is None:
            summary.reject(raw.number, raw.reason or "bad_row", None, raw.detail)
            continue
        try:
            message = mapper.map(raw.data)
        except ValidationError as exc:
            summary.reject(raw.number, exc.reason, exc.field, str(exc))
            continue
        messages.append(message)
        row_numbers.append(raw.number)
    if not messages:
        return
    outcomes = submit(messages)
    if len(outcomes) != len(messages):
        raise TouchstreamError(f"submit returned {len(outcomes)} outcomes for {len(messages)} messages")
    seen: set[int] = set()
    for outcome in outcomes:
        if not 0 <= outcome.index < len(messages) or outcome.index in seen:
            raise TouchstreamError(f"submit returned an outcome for index {outcome.index} out of place")
        seen.add(outcome.index)
        row = row_numbers[outcome.index]
        if outcome.accepted:
            summary.accept(duplicate=outcome.duplicate)
        else:
            summary.reject(row, outcome.reason or "rejected", outcome.field, outcome.message)


@contextmanager
def _progress_bar(enabled: bool, reader: RowReader, summary: ImportSummary) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the file (bytes, or rows for Parquet); a no-op when disabled."""
    if not enabled:
        yield lambda: None
        return
    amount = DownloadColumn() if reader.unit == "bytes" else MofNCompleteColumn()
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), amount,
        TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task(reader.path.name, total=reader.total or None, counts="")

        def advance() -> None:
            counts = (f"{summary.rows:,} rows, {summary.rejected:,} rejected, "
                      f"{summary.duplicates:,} duplicates")
            bar.update(task, completed=reader.position(), counts=counts)

        yield advance
        bar.update(task, completed=reader.total)
