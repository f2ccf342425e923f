"""A deterministic data set of customer journeys for the analytics tests (and their benchmarks).

People arrive through every channel the shipped rules know (campaign parameters in
``context.campaign`` or in the page URL, referrers, webinar and offline events, CRM imports,
WeChat, direct), browse their own site, convert now and then (revenue as a number, as text, under
``total``, or not at all), sign up as leads, and are merged: an anonymous OneID folded into a
known one, sometimes through a chain. Some events share a millisecond, some are delivered twice
(same source and messageId at a later offset), some orders arrive with no touch at all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from schemas.testing import T0, event_record

DAY = 86_400_000
MINUTE = 60_000
SITE = "https://shop.example.cn"
CAMPAIGNS = ("spring sale", "双十一", "cdp-101", "retarget", None)
ORDER = "Order Completed"


@dataclass
class Journeys:
    """Rows for the lake: events in offset order and merges."""

    events: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    end_ms: int = T0


def _landing(rng: random.Random, at: int, oneid: str, ids: Iterator[int]) -> list[dict[str, Any]]:
    """The first event(s) of a visit, from one of the channels."""
    campaign = rng.choice(CAMPAIGNS)
    kind = rng.randrange(14)
    mid = f"j-{next(ids)}"

    def page(url: str, referrer: str = "", in_context: bool = False, **extra: Any) -> dict[str, Any]:
        page_fields = {"url": url, "path": "/", **({"referrer": referrer} if referrer else {})}
        if in_context:
            return event_record("page", at, message_id=mid, oneid=oneid, name="Home", properties={},
                                context={"page": page_fields, **extra})
        return event_record("page", at, message_id=mid, oneid=oneid, name="Home", properties=page_fields,
                            context=extra)

    query = f"&utm_campaign={quote(campaign)}" if campaign else ""
    if kind == 0:  # paid search, parameters in the URL
        return [page(f"{SITE}/?utm_source=baidu&utm_medium=cpc{query}", "https://www.baidu.com/s?wd=cdp")]
    if kind == 1:  # email, parameters parsed by the SDK into context.campaign
        utm = {"source": "newsletter", "medium": "email", **({"name": campaign} if campaign else {})}
        return [page(f"{SITE}/promo", "", in_context=True, campaign=utm)]
    if kind == 2:
        return [page(f"{SITE}/?utm_source=wechat&utm_medium=article{query}", "https://mp.weixin.qq.com/s/x")]
    if kind == 3:
        return [page(f"{SITE}/", rng.choice(("https://weibo.com/u/1", "https://www.zhihu.com/q/2")))]
    if kind == 4:
        return [page(f"{SITE}/", rng.choice(("https://www.google.com/", "https://www.baidu.com/s?wd=x",
                                            "https://cn.bing.com/search")), in_context=rng.random() < 0.5)]
    if kind == 5:
        return [page(f"{SITE}/")]  # direct
    if kind == 6:
        props = {"webinar": "CDP 101", **({"campaign": campaign} if campaign else {})}
        return [event_record("track", at, message_id=mid, oneid=oneid, event="Webinar Attended",
                             properties=props, source="webinar-platform")]
    if kind == 7:
        return [event_record("track", at, message_id=mid, oneid=oneid, event="Booth Visited",
                             properties={"expo": "Shanghai"}, source="events-app")]
    if kind == 8:
        return [event_record("identify", at, message_id=mid, oneid=oneid, traits={"company": "x"},
                             source="import-contacts")]
    if kind == 9:
        return [page(f"{SITE}/?utm_source=partner&utm_medium=display{query}", "https://ads.partner.cn/")]
    if kind == 10:
        return [page(f"{SITE}/", "https://blog.other.cn/post")]  # referral
    if kind == 11:
        return [event_record("track", at, message_id=mid, oneid=oneid, event="Page Viewed",
                             context={"channel": "wechat_miniprogram"}, source="miniprogram")]
    if kind == 12:
        return [event_record("track", at, message_id=mid, oneid=oneid, event="Email Link Clicked",
                             properties={"campaign": campaign} if campaign else {}, source="esp")]
    return [event_record("track", at, message_id=mid, oneid=oneid, event="Application Opened", source="app")]


def _order(rng: random.Random, at: int, oneid: str, mid: str, source: str = "web") -> dict[str, Any]:
    amount = round(rng.uniform(5, 900), 2)
    shape = rng.randrange(5)
    props: dict[str, Any] = ({"revenue": amount}, {"revenue": str(amount)}, {"total": amount}, {},
                             {"revenue": "n/a", "total": amount})[shape]
    return event_record("track", at, message_id=mid, oneid=oneid, event=ORDER, properties=props,
                        source=source)


def generate(people: int = 2000, *, seed: int = 14, days: int = 120) -> Journeys:
    """``people`` journeys over ``days`` days from T0 (about 10 events a person)."""
    rng = random.Random(seed)
    ids = iter(range(10**12))
    out = Journeys()
    events: list[tuple[int, dict[str, Any]]] = []
    for p in range(people):
        anon, known = f"anon-{p}", f"user-{p}"
        merged = rng.random() < 0.5
        chained = merged and rng.random() < 0.2
        merge_at = T0 + rng.randrange(days * DAY)

        def oneid_at(t: int, a: str = anon, k: str = known, m: bool = merged, at: int = merge_at) -> str:
            return k if m and t >= at else a

        at = T0 + rng.randrange(days * DAY)
        for _ in range(rng.randrange(1, 7)):
            for landing in _landing(rng, at, oneid_at(at), ids):
                events.append((at, landing))
            t = at
            for _ in range(rng.randrange(0, 4)):  # browsing the own site, sometimes in the same ms
                t += rng.choice((0, 1000, 20_000, 5 * MINUTE))
                events.append((t, event_record("page", t, message_id=f"j-{next(ids)}", oneid=oneid_at(t),
                                               properties={"url": f"{SITE}/p", "referrer": f"{SITE}/"})))
            if rng.random() < 0.35:
                t += rng.choice((0, 2000, 10 * MINUTE))
                events.append((t, _order(rng, t, oneid_at(t), f"j-{next(ids)}")))
            if rng.random() < 0.15:
                t += 1000
                events.append((t, event_record("track", t, message_id=f"j-{next(ids)}", oneid=oneid_at(t),
                                               event="Signed Up")))
            at = t + rng.choice((10 * MINUTE, 2 * 3600_000, 3 * DAY, 12 * DAY, 40 * DAY))
        if rng.random() < 0.05:  # an imported order of someone never touched
            t = T0 + rng.randrange(days * DAY)
            events.append((t, _order(rng, t, f"crm-{p}", f"j-{next(ids)}", source="import-orders")))
        if merged:
            if chained:
                out.merges.append(_merge(f"dev-{p}", anon, merge_at - DAY))
                out.merges.append(_merge(known, f"dev-{p}", merge_at))
            else:
                out.merges.append(_merge(known, anon, merge_at))
    # the lake holds events in arrival order: shuffle a little, then deliver a few twice
    events.sort(key=lambda pair: (pair[0], rng.random()))
    rows = [e for _, e in events]
    for i in rng.sample(range(len(rows)), k=len(rows) // 200):
        rows.append(dict(rows[i]))
    out.events = rows
    out.merges.sort(key=lambda m: m["timestamp"])
    out.end_ms = T0 + (days + 60) * DAY
    return out


def _merge(survivor: str, merged: str, at: int) -> dict[str, Any]:
    return {"survivor": survivor, "merged": merged, "message_id": f"merge-{merged}", "timestamp": at,
            "identifiers": [], "reason": "email"}
