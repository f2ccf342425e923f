from __future__ import annotations

import pytest

from bench.codec import bench_codec, sample_event
from schemas.codec import EVENT, default_registry


def test_sample_event_is_a_typical_one_kilobyte_event() -> None:
    size = len(default_registry().encode(EVENT, sample_event(1)))
    assert 900 <= size <= 1400


def test_bench_codec_reports_rates() -> None:
    result = bench_codec(300)
    assert result["events"] == 300
    assert result["bytes_per_event"] > 900
    assert result["encode_per_s"] > 0 and result["decode_per_s"] > 0
    assert result["roundtrip_per_s"] < min(result["encode_per_s"], result["decode_per_s"])


def test_bench_codec_needs_events() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bench_codec(0)
