"""connectors.outcome: the per-message result shared by collector and importers."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.outcome import Outcome, count_reasons
from touchstream.errors import ValidationError


def test_outcome_is_frozen_and_defaults() -> None:
    outcome = Outcome(3, True)
    assert (outcome.reason, outcome.field, outcome.message, outcome.duplicate) == (None, None, None, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.accepted = False  # type: ignore[misc]


def test_constructors() -> None:
    assert Outcome.ok(1, duplicate=True) == Outcome(1, True, duplicate=True)
    assert Outcome.rejected(2, "missing", "event") == Outcome(2, False, "missing", "event")
    error = ValidationError("userId", "missing_identity", "needs an id")
    assert Outcome.from_error(4, error) == Outcome(4, False, "missing_identity", "userId", "needs an id")


def test_as_dict_and_reason_counts() -> None:
    outcomes = [Outcome.ok(0), Outcome.ok(1, duplicate=True), Outcome.rejected(2, "too_large", "body", "big"),
                Outcome.rejected(3, "too_large", "body"), Outcome.rejected(4, "missing", "event")]
    assert outcomes[0].as_dict() == {"index": 0, "accepted": True}
    assert outcomes[1].as_dict() == {"index": 1, "accepted": True, "duplicate": True}
    assert outcomes[2].as_dict() == {"index": 2, "accepted": False, "reason": "too_large", "field": "body",
                                     "message": "big"}
    assert count_reasons(outcomes) == {"too_large": 2, "missing": 1}
