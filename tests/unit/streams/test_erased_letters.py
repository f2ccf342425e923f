"""Dead letters of erased people are found by OneID or by identifier pseudonym, under either
secret while one is rotated."""

from __future__ import annotations

from schemas.codec import EVENT, default_registry
from schemas.testing import event_record
from streams.erased_letters import Person, carries
from touchstream.pseudonyms import Pseudonyms

OLD_SECRET, NEW_SECRET = "old-secret-" + "1" * 32, "new-secret-" + "2" * 32
OLD, NEW = Pseudonyms(OLD_SECRET), Pseudonyms(NEW_SECRET)
PHONE = "+8613912345678"


def letter_of(record: dict) -> dict:
    return {"key": b"", "source_topic": "touchstream.events.raw",
            "original": default_registry().encoder(EVENT)(record)}


def raw_event_with_the_phone() -> dict:
    return letter_of(event_record("identify", identifiers=[{"type": "phone", "value": PHONE}]))


def test_a_letter_is_matched_by_the_pseudonym_of_an_identifier_it_carries() -> None:
    erased = Person(frozenset(), frozenset({f"phone:{NEW.of('phone', PHONE)}"}), NEW)
    assert carries(raw_event_with_the_phone(), erased)
    other = Person(frozenset(), frozenset({f"phone:{NEW.of('phone', '+8613912345679')}"}), NEW)
    assert not carries(raw_event_with_the_phone(), other)


def test_hashes_written_under_the_previous_secret_match_only_while_it_is_kept() -> None:
    erased_before_rotation = frozenset({f"phone:{OLD.of('phone', PHONE)}"})
    rotating = Pseudonyms(NEW_SECRET, previous=OLD_SECRET)
    assert carries(raw_event_with_the_phone(), Person(frozenset(), erased_before_rotation, rotating))
    assert not carries(raw_event_with_the_phone(), Person(frozenset(), erased_before_rotation, NEW))


def test_without_pseudonyms_only_oneids_and_recorded_hashes_match() -> None:
    hashes = frozenset({f"phone:{NEW.of('phone', PHONE)}"})
    assert not carries(raw_event_with_the_phone(), Person(frozenset(), hashes))
    stamped = letter_of(event_record("identify", oneid="o_1", identifiers=[]))
    assert carries(stamped, Person(frozenset({"o_1"})))
