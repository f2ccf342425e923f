"""A second implementation of attribution and RFM in plain Python over the same rows, for the tests.

Written apart from ``analytics`` and differently on purpose: events and merges are read as rows
(Python dicts, the lake's own columns), JSON with ``json``, URLs with ``urllib``, rules by
``fnmatch``; the Markov chain is solved by iterating the chain with each key removed instead of
inverting a matrix; quintiles by counting. Only the rules file and the documented definitions are
shared. Slow (a loop per event), and that is fine here.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, urlsplit

from analytics.channels import INTERNAL, NO_REFERRER, ChannelRules

NONE_KEY = "(none)"


def survivors(merges: Sequence[dict[str, Any]]) -> dict[str, str]:
    """merged OneID -> the OneID it ends in (each merged id's newest merge, chains followed)."""
    newest: dict[str, tuple[int, str]] = {}
    for m in merges:
        if m["merged"] not in newest or m["timestamp"] >= newest[m["merged"]][0]:
            newest[m["merged"]] = (m["timestamp"], m["survivor"])
    out = {}
    for merged in newest:
        at, hops = merged, 0
        while at in newest and hops < 64:
            at, hops = newest[at][1], hops + 1
        out[merged] = at
    return out


def deduplicated(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in events:
        if (e["source"], e["message_id"]) not in seen:
            seen.add((e["source"], e["message_id"]))
            out.append(e)
    return out


def person_of(event: dict[str, Any], links: dict[str, str]) -> str:
    oneid = event.get("oneid")
    if oneid is None:
        return f"~{event['source']}:{event['message_id']}"
    return links.get(oneid, oneid)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _get(obj: Any, *path: str) -> str | None:
    for name in path:
        if not isinstance(obj, dict) or name not in obj:
            return None
        obj = obj[name]
    return _text(obj)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _param(url: str, name: str) -> str:
    try:
        values = parse_qs(urlsplit(url).query).get(name)
    except ValueError:
        return ""
    return values[0] if values else ""


@dataclass
class Touch:
    person: str
    ts: int
    source: str
    message_id: str
    channel: str
    campaign: str | None


def features(event: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    props, ctx = json.loads(event["properties"]), json.loads(event["context"])
    url = _first(_get(props, "url"), _get(ctx, "page", "url"), "")
    referrer = _first(_get(props, "referrer"), _get(ctx, "page", "referrer"), "")
    found = {
        "utm_source": (_get(ctx, "campaign", "source") or _param(url, "utm_source")).lower(),
        "utm_medium": (_get(ctx, "campaign", "medium") or _param(url, "utm_medium")).lower(),
        "referrer": _host(referrer),
        "page_host": _host(url),
        "event": (event.get("event") or "").lower(),
        "type": event["type"].lower(),
        "source": event["source"].lower(),
        "context_channel": (_get(ctx, "channel") or "").lower(),
    }
    campaign = _get(ctx, "campaign", "name") or _param(url, "utm_campaign") or _get(props, "campaign") or None
    return found, campaign


def _first(*values: str | None) -> str:
    return next(v for v in values if v is not None)


def _host_matches(host: str, pattern: str) -> bool:
    return fnmatchcase(host, pattern) or fnmatchcase(host, "*." + pattern)


def classify(rules: ChannelRules, found: dict[str, str]) -> str | None:
    for rule in rules.rules:
        if all(_matches(rules, name, patterns, found) for name, patterns in rule.conditions):
            return None if rule.channel == "none" else rule.channel
    return None


def _matches(rules: ChannelRules, name: str, patterns: tuple[str, ...], found: dict[str, str]) -> bool:
    value = found[name]
    for p in patterns:
        if name == "referrer":
            if p == NO_REFERRER and value == "":
                return True
            if p == INTERNAL and value and (value == found["page_host"]
                                            or any(_host_matches(value, h) for h in rules.internal_hosts)):
                return True
            if p not in (NO_REFERRER, INTERNAL) and _host_matches(value, p):
                return True
        elif fnmatchcase(value, p):
            return True
    return False


def revenue(event: dict[str, Any], fields: Sequence[str]) -> float:
    props = json.loads(event["properties"])
    for name in fields:
        obj: Any = props
        for part in name.split("."):
            obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None or isinstance(obj, bool | dict | list):
            continue
        try:
            value = float(obj)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return 0.0


@dataclass
class Conv:
    person: str
    ts: int
    source: str
    message_id: str
    revenue: float
    counted: bool


def journeys(events: Sequence[dict[str, Any]], merges: Sequence[dict[str, Any]], rules: ChannelRules,
             conversion: str, revenue_fields: Sequence[str], since: int | None = None,
             until: int | None = None) -> tuple[list[Conv], list[Touch]]:
    links = survivors(merges)
    convs, candidates = [], []
    for e in deduplicated(events):
        who = person_of(e, links)
        if e["type"] == "track" and e.get("event") == conversion:
            ts = e["timestamp"]
            counted = (since is None or ts >= since) and (until is None or ts <= until)
            convs.append(Conv(who, e["timestamp"], e["source"], e["message_id"], revenue(e, revenue_fields),
                              counted))
            continue
        found, campaign = features(e)
        channel = classify(rules, found)
        if channel is not None:
            candidates.append(Touch(who, e["timestamp"], e["source"], e["message_id"], channel, campaign))
    candidates.sort(key=lambda t: (t.person, t.ts, t.source, t.message_id))
    touches = []
    for i, t in enumerate(candidates):
        prev = candidates[i - 1] if i else None
        if (prev is not None and prev.person == t.person and prev.channel == t.channel
                and prev.campaign == t.campaign and t.ts - prev.ts <= rules.session_gap_ms):
            continue
        touches.append(t)
    convs.sort(key=lambda c: (c.ts, c.source, c.message_id))
    return convs, touches


def key_of(touch: Touch, by: str) -> str:
    if by == "channel":
        return touch.channel
    return touch.campaign if touch.campaign is not None else f"({touch.channel})"


def attribute(convs: Sequence[Conv], touches: Sequence[Touch], *, by: str, lookback: int,
              half_life: int, since: int | None = None,
              until: int | None = None) -> dict[str, dict[str, float]]:
    """key -> {model_conversions, model_revenue} for the six models."""
    per_person: dict[str, list[Touch]] = defaultdict(list)
    for t in touches:
        per_person[t.person].append(t)
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def give(key: str, model: str, credit: float, value: float) -> None:
        out[key][f"{model}_conversions"] += credit
        out[key][f"{model}_revenue"] += credit * value

    paths: list[tuple[list[str], bool]] = []
    touched = touched_revenue = 0.0
    for c in convs:
        if not c.counted:
            continue
        mine = [t for t in per_person[c.person] if c.ts - lookback <= t.ts <= c.ts]
        mine.sort(key=lambda t: (t.ts, t.source, t.message_id))
        n = len(mine)
        if n == 0:
            for model in ("first", "last", "linear", "u_shaped", "time_decay", "markov"):
                give(NONE_KEY, model, 1.0, c.revenue)
            continue
        keys = [key_of(t, by) for t in mine]
        paths.append((keys, True))
        touched += 1
        touched_revenue += c.revenue
        give(keys[0], "first", 1.0, c.revenue)
        give(keys[-1], "last", 1.0, c.revenue)
        weights = [0.5 ** ((mine[-1].ts - t.ts) / half_life) for t in mine]
        for i, key in enumerate(keys):
            give(key, "linear", 1.0 / n, c.revenue)
            if n == 1:
                u = 1.0
            elif n == 2:
                u = 0.5
            else:
                u = 0.4 if i in (0, n - 1) else 0.2 / (n - 2)
            give(key, "u_shaped", u, c.revenue)
            give(key, "time_decay", weights[i] / sum(weights), c.revenue)
    paths += lost_paths(convs, touches, by=by, lookback=lookback, since=since, until=until)
    effects = removal_effects_by_iteration(paths)
    total = sum(effects.values())
    for key, effect in effects.items():
        out[key]["markov_conversions"] += effect / total * touched
        out[key]["markov_revenue"] += effect / total * touched_revenue
    return {k: dict(v) for k, v in out.items()}


def lost_paths(convs: Sequence[Conv], touches: Sequence[Touch], *, by: str, lookback: int,
               since: int | None, until: int | None) -> list[tuple[list[str], bool]]:
    """Per person, touches no conversion followed within the lookback, split at conversions."""
    conv_times: dict[str, list[int]] = defaultdict(list)
    for c in convs:
        conv_times[c.person].append(c.ts)
    groups: dict[tuple[str, int], list[Touch]] = defaultdict(list)
    for t in touches:
        times = sorted(conv_times[t.person])
        nxt = bisect_left(times, t.ts)  # conversions at the touch's own moment come after it
        if nxt < len(times) and times[nxt] - t.ts <= lookback:
            continue
        if (since is not None and t.ts < since - lookback) or (until is not None and t.ts > until):
            continue
        groups[(t.person, nxt)].append(t)
    out = []
    for group in groups.values():
        group.sort(key=lambda t: (t.ts, t.source, t.message_id))
        out.append(([key_of(t, by) for t in group], False))
    return out


def removal_effects_by_iteration(paths: Sequence[tuple[list[str], bool]]) -> dict[str, float]:
    """Removal effects, each found by iterating the chain with the key removed to a fixed point."""
    moves: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    start, conv, null = "\x00start", "\x00conv", "\x00null"
    for keys, converted in paths:
        states = [start, *keys, conv if converted else null]
        for a, b in pairwise(states):
            moves[a][b] += 1
    probs = {a: {b: n / sum(outs.values()) for b, n in outs.items()} for a, outs in moves.items()}

    def p_conversion(removed: str | None) -> float:
        value = defaultdict(float, {conv: 1.0})
        for _ in range(100_000):
            change = 0.0
            for a, outs in probs.items():
                if a == removed:
                    continue
                new = sum(p * (0.0 if b == removed else value[b]) for b, p in outs.items())
                change = max(change, abs(new - value[a]))
                value[a] = new
            if change < 1e-15:
                break
        return value[start]

    base = p_conversion(None)
    if base <= 0:
        return {}
    keys = {k for keys, _ in paths for k in keys}
    return {k: 1.0 - p_conversion(k) / base for k in keys}


def rfm(events: Sequence[dict[str, Any]], merges: Sequence[dict[str, Any]], conversion: str,
        revenue_fields: Sequence[str], as_of: int) -> dict[str, dict[str, Any]]:
    """oneid -> recency/frequency/monetary, their scores, the three-digit score and the segment."""
    links = survivors(merges)
    orders: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for e in deduplicated(events):
        if (e["type"] == "track" and e.get("event") == conversion and e.get("oneid") is not None
                and e["timestamp"] <= as_of):
            orders[links.get(e["oneid"], e["oneid"])].append((e["timestamp"], revenue(e, revenue_fields)))
    people = {who: {"last_order_ms": max(t for t, _ in rows), "frequency": len(rows),
                    "monetary": sum(v for _, v in rows)} for who, rows in orders.items()}
    n = len(people)

    def scores(name: str) -> dict[str, int]:
        values = sorted(p[name] for p in people.values())
        # the score is how many people have a smaller value, in fifths of everyone
        return {who: 1 + (5 * bisect_left(values, p[name])) // n for who, p in people.items()}

    r, f, m = scores("last_order_ms"), scores("frequency"), scores("monetary")
    out = {}
    for who, p in people.items():
        fm = math.floor((f[who] + m[who]) / 2 + 0.5)
        out[who] = {**p, "recency_days": (as_of - p["last_order_ms"]) / 86_400_000, "r": r[who], "f": f[who],
                    "m": m[who], "rfm_score": int(f"{r[who]}{f[who]}{m[who]}"), "segment": _grid(r[who], fm)}
    return out


def _grid(r: int, fm: int) -> str:
    """The grid of analytics/rfm.py's docstring, written out cell by cell (rows R 5..1, FM 1..5)."""
    rows = {
        5: ["new", "potential_loyalists", "potential_loyalists", "champions", "champions"],
        4: ["promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"],
        3: ["about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"],
        2: ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"],
        1: ["lost", "lost", "at_risk", "at_risk", "cant_lose_them"],
    }
    return rows[r][fm - 1]
