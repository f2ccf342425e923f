"""Logging set-up for the command line only; library modules never add handlers."""

from __future__ import annotations

import logging


def configure(level: str = "INFO") -> None:
    """Log to stderr with timestamps; called once by the CLI entry points."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
