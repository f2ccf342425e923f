"""File importers: CSV, JSONL and Parquet rows -> Segment-spec messages -> the same ingest path.

``import_file`` is what ``touchstream import FILE --kind ... --map ...`` calls.
"""

from __future__ import annotations

from connectors.importers.mapping import IMPORT_REASONS, KINDS, RowMapper, parse_mapping
from connectors.importers.readers import open_reader
from connectors.importers.run import import_file
from connectors.importers.summary import ImportSummary, RejectedRow

__all__ = [
    "IMPORT_REASONS",
    "KINDS",
    "ImportSummary",
    "RejectedRow",
    "RowMapper",
    "import_file",
    "open_reader",
    "parse_mapping",
]
