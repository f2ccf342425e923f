"""Dead letters live beside the stream loops now (``streams/deadletters.py``); kept for callers."""

from __future__ import annotations

from streams.deadletters import DeadLetter, StoredDeadLetter, dead_letter, read_dead_letters, replay

__all__ = ["DeadLetter", "StoredDeadLetter", "dead_letter", "read_dead_letters", "replay"]
