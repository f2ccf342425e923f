"""Property tests of the codec: whatever bytes reach a consumer, decoding answers a record or a
DecodeError with a known reason, never another exception (a crash there stalls a partition).
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.codec import MAGIC, default_registry
from schemas.exceptions import DecodeError
from tests.unit.schemas.conftest import SAMPLES

REGISTRY = default_registry()
REASONS = ("bad_marker", "truncated", "unknown_fingerprint", "unexpected_schema", "bad_body",
           "trailing_bytes")
HEADERS = [version.header for name in REGISTRY.names for version in REGISTRY.versions(name)]
VALID = [REGISTRY.encode(name, sample) for name, sample in SAMPLES.items()]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(data: bytes, expected: str | None = None) -> None:
    try:
        name, record = REGISTRY.decode(data, expected)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc.reason
        return
    assert name in REGISTRY.names and isinstance(record, dict)


@FUZZ
@given(data=st.binary(max_size=200))
@example(data=b"")
@example(data=MAGIC)
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    decodes_or_refuses(data)


@FUZZ
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=300))
@example(header=HEADERS[0], body=b"\xff" * 20)  # a varint that never ends
@example(header=HEADERS[0], body=b"\x01" * 10 + b"\xfe\xff\xff\xff\x0f")  # a huge negative length
def test_a_known_header_with_an_arbitrary_body_raises_only_decode_errors(header: bytes, body: bytes) -> None:
    decodes_or_refuses(header + body)


@FUZZ
@given(which=st.integers(0, len(VALID) - 1), at=st.integers(0, 10_000), cut=st.booleans(),
       noise=st.binary(min_size=1, max_size=4), expected=st.sampled_from([None, *REGISTRY.names]))
def test_mutated_and_truncated_records_raise_only_decode_errors(which: int, at: int, cut: bool, noise: bytes,
                                                                expected: str | None) -> None:
    data = VALID[which]
    at %= len(data) + 1
    mutated = data[:at] if cut else data[:at] + noise + data[at + len(noise):]
    decodes_or_refuses(mutated, expected)


def test_every_sample_still_decodes_to_itself() -> None:
    for (name, sample), data in zip(SAMPLES.items(), VALID, strict=True):
        assert REGISTRY.decode(data) == (name, sample)
