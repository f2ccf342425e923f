"""Codec throughput on a typical ~1 KB Event, for ``make bench``.

Measures the hot-loop closures (:meth:`SchemaRegistry.encoder` / :meth:`SchemaRegistry.decoder`)
that the collector and the workers use, in one process on one core.
"""

from __future__ import annotations

import time
from typing import Any

from schemas.codec import EVENT, SchemaRegistry, default_registry
from schemas.testing import event_record

_CONTEXT = {
    "ip": "203.0.113.9",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "page": {
        "path": "/pricing",
        "referrer": "https://www.example.com/blog/spring-launch",
        "title": "Pricing - Example Shop",
        "url": "https://shop.example.com/pricing?utm_source=wechat&utm_medium=social&utm_campaign=spring",
    },
    "userAgent": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.40(0x1800282a) NetType/WIFI Language/zh_CN"
    ),
    "locale": "zh-CN",
    "timezone": "Asia/Shanghai",
    "campaign": {"name": "spring", "source": "wechat", "medium": "social", "content": "banner-2"},
    "device": {"id": "5f1d2c3b-aaaa-4bbb-8ccc-0123456789ab", "manufacturer": "Apple", "model": "iPhone15,2"},
}


def sample_event(i: int = 0) -> dict[str, Any]:
    """A realistic track event (about 1 KB encoded) whose ids vary with ``i``."""
    anonymous_id = f"a3f2a9c1-1b2d-4c5e-8f90-{i:012d}"
    ts = 1_700_000_000_000 + i
    return event_record(
        "track", ts, message_id=f"ajs-next-{ts}-{i:08d}-3f2a9c1e-1b2d-4c5e", source="web",
        event="Product Viewed", anonymous_id=anonymous_id, user_id=f"u-{i}",
        original_timestamp=ts - 150, sent_at=ts - 100,
        identifiers=[
            {"type": "user_id", "value": f"u-{i}"},
            {"type": "anonymous_id", "value": anonymous_id},
            {"type": "email", "value": f"user{i}@example.com"},
        ],
        invalid_identifiers=[{"type": "phone", "value": "12345", "reason": "not_a_number"}],
        properties={"product_id": f"sku-{i % 500}", "price": 19.9, "currency": "CNY", "category": "shoes",
                    "name": "Runner 2", "quantity": 1},
        context=_CONTEXT,
    )


def bench_codec(n: int = 50_000, registry: SchemaRegistry | None = None) -> dict[str, float]:
    """Encode then decode ``n`` Events; returns events/s for each and the encoded size.

    Keys: ``events``, ``bytes_per_event``, ``encode_per_s``, ``decode_per_s``, ``roundtrip_per_s``.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    registry = registry or default_registry()
    encode, decode = registry.encoder(EVENT), registry.decoder(EVENT)
    variants = [sample_event(i) for i in range(min(n, 256))]
    records = [variants[i % len(variants)] for i in range(n)]

    start = time.perf_counter()
    encoded = [encode(record) for record in records]
    encode_s = time.perf_counter() - start

    start = time.perf_counter()
    for data in encoded:
        decode(data)
    decode_s = time.perf_counter() - start

    return {
        "events": float(n),
        "bytes_per_event": sum(map(len, encoded)) / n,
        "encode_per_s": n / encode_s,
        "decode_per_s": n / decode_s,
        "roundtrip_per_s": n / (encode_s + decode_s),
    }


if __name__ == "__main__":
    for key, value in bench_codec().items():
        print(f"{key:>16}: {value:,.0f}")
