"""The per-message result shared by the collector and the importers.

One shape for "what happened to message ``index``" lets the HTTP response, the import summary
and the metrics all count the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from touchstream.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Outcome:
    """Message ``index`` of a batch was accepted (maybe as a ``duplicate``) or rejected for ``reason``."""

    index: int
    accepted: bool
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    duplicate: bool = False

    @classmethod
    def ok(cls, index: int, *, duplicate: bool = False) -> Outcome:
        return cls(index, True, duplicate=duplicate)

    @classmethod
    def rejected(
        cls, index: int, reason: str, field: str | None = None, message: str | None = None
    ) -> Outcome:
        return cls(index, False, reason, field, message)

    @classmethod
    def from_error(cls, index: int, error: ValidationError) -> Outcome:
        """A rejection carrying the error's field, reason and text."""
        return cls(index, False, error.reason, error.field, str(error))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for an HTTP response (only the keys that say something)."""
        out: dict[str, object] = {"index": self.index, "accepted": self.accepted}
        if self.duplicate:
            out["duplicate"] = True
        if not self.accepted:
            out.update(reason=self.reason, field=self.field, message=self.message)
        return out


def count_reasons(outcomes: Iterable[Outcome]) -> Counter[str]:
    """Rejections per reason code (the label values of the rejection metrics)."""
    return Counter(o.reason or "unknown" for o in outcomes if not o.accepted)
