"""What an import did: counts per outcome and per reason, and the first rejected rows.

Every row ends up counted exactly once (accepted, duplicate or rejected), so a user can tell
from the summary alone that nothing was dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_SAMPLES = 10


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """Data row ``row`` (1-based, header excluded) was rejected for ``reason``; no values (PII) kept."""

    row: int
    reason: str
    field: str | None = None
    message: str | None = None


@dataclass
class ImportSummary:
    """Counts of one import; ``rows == accepted + duplicates + rejected``."""

    path: Path
    kind: str
    rows: int = 0
    accepted: int = 0  # new messages handed on
    duplicates: int = 0  # accepted but already seen (re-import, repeated row)
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    rejected_rows: list[RejectedRow] = field(default_factory=list)
    elapsed_s: float = 0.0

    def accept(self, *, duplicate: bool) -> None:
        self.rows += 1
        if duplicate:
            self.duplicates += 1
        else:
            self.accepted += 1

    def reject(
        self, row: int, reason: str, field_name: str | None = None, message: str | None = None
    ) -> None:
        self.rows += 1
        self.rejected += 1
        self.reasons[reason] += 1
        if len(self.rejected_rows) < MAX_SAMPLES:
            self.rejected_rows.append(RejectedRow(row, reason, field_name, message))

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self) -> str:
        """A short plain-text report for the terminal."""
        lines = [
            f"Imported {self.path.name} as {self.kind} in {self.elapsed_s:.1f}s "
            f"({self.rows_per_s:,.0f} rows/s)",
            f"  rows        {self.rows:>10,}",
            f"  accepted    {self.accepted:>10,}",
            f"  duplicates  {self.duplicates:>10,}",
            f"  rejected    {self.rejected:>10,}",
        ]
        if self.reasons:
            lines.append("Rejections by reason:")
            width = max(len(reason) for reason in self.reasons)
            lines.extend(f"  {reason:<{width}}  {count:>10,}" for reason, count in self.reasons.most_common())
        if self.rejected_rows:
            lines.append(f"First rejected rows (of {self.rejected:,}):")
            for sample in sorted(self.rejected_rows, key=lambda s: s.row):
                where = f" [{sample.field}]" if sample.field else ""
                detail = f": {sample.message}" if sample.message else ""
                lines.append(f"  row {sample.row}: {sample.reason}{where}{detail}")
        return "\n".join(lines)
