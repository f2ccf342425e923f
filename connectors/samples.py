"""Sample Segment-spec events for the demo and tests: a few people across channels."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

PAGES = ("/", "/pricing", "/features/segments", "/features/journeys", "/blog/cdp", "/checkout")
CHANNELS = ("web", "app", "wechat_miniprogram", "store", "webinar")


def sample_events(count: int, *, people: int = 50, seed: int = 7, run_id: str | None = None,
                  start: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``count`` Segment-spec messages (page, track, identify) for ``people`` people."""
    rng = random.Random(seed)
    run = run_id or uuid.uuid4().hex[:12]
    t0 = start or datetime.now(UTC) - timedelta(hours=1)
    for i in range(count):
        person = rng.randrange(people)
        ts = t0 + timedelta(seconds=i * 0.5)
        base: dict[str, Any] = {
            "messageId": f"{run}-{i}",
            "anonymousId": f"anon-{run}-{person}",
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "context": {"channel": rng.choice(CHANNELS)},
        }
        kind = rng.random()
        if kind < 0.6:
            base.update(type="page", name="page", properties={"path": rng.choice(PAGES)})
        elif kind < 0.9:
            base.update(type="track", event=rng.choice(("Product Viewed", "Order Completed", "Signed Up")),
                        properties={"revenue": round(rng.uniform(10, 900), 2)})
        else:
            base.update(type="identify", userId=f"user-{run}-{person}",
                        traits={"email": f"Person{person}@163.com "})
        yield base
