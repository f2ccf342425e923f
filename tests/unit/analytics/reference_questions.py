"""A second, independent implementation of the lake's questions: plain Python over the same rows.

Written from the definitions in the modules' docstrings, not from their SQL: per person lists,
loops and ``statistics.median``. Slow and obvious on purpose; the tests compare the two on a
generated data set.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tests.unit.analytics.lakegen import LakeWriter

Event = dict[str, Any]


def survivor_of(lake: LakeWriter) -> Callable[[str], str]:
    """A OneID's survivor: each merged OneID's latest merge, followed to its end."""
    latest: dict[str, tuple[int, str]] = {}
    for m in lake.merges:
        if m["merged"] not in latest or m["timestamp"] > latest[m["merged"]][0]:
            latest[m["merged"]] = (m["timestamp"], m["survivor"])

    def follow(oneid: str) -> str:
        seen = 0
        while oneid in latest and seen < 64:
            oneid, seen = latest[oneid][1], seen + 1
        return oneid
    return follow


def people(lake: LakeWriter) -> dict[str, list[Event]]:
    """Each person's events once (the first copy of a source and messageId), in time, then source and
    messageId order."""
    follow, seen = survivor_of(lake), set()
    out: dict[str, list[Event]] = defaultdict(list)
    for offset, e in enumerate(lake.events):
        if (e["source"], e["message_id"]) in seen or e["oneid"] is None:
            continue
        seen.add((e["source"], e["message_id"]))
        out[follow(e["oneid"])].append(e | {"_offset": offset})
    for evs in out.values():
        evs.sort(key=lambda e: (e["timestamp"], e["source"], e["message_id"]))
    return out


def step_matcher(spec: str) -> Callable[[Event], bool]:
    types = {"identify", "track", "page", "screen", "group", "alias"}
    if spec in types:
        return lambda e: e["type"] == spec
    head, _, rest = spec.partition(":")
    if head in ("page", "screen") and rest:
        if head == "page" and rest.startswith("/"):
            def by_path(e: Event) -> bool:
                path = json.loads(e["properties"]).get("path")
                if path is None:
                    path = json.loads(e["context"]).get("page", {}).get("path")
                return e["type"] == "page" and isinstance(path, str) and path.startswith(rest)
            return by_path
        return lambda e: e["type"] == head and e["name"] == rest
    name = rest if head == "track" and rest else spec
    return lambda e: e["type"] == "track" and e["event"] == name


def prop(e: Event, name: str) -> str | None:
    value = json.loads(e["properties"]).get(name)
    return value if value is None or isinstance(value, str) else json.dumps(value)


def funnel(lake: LakeWriter, steps: list[str], window: int, any_order: bool = False,
           by: str | None = None) -> dict[str, list[tuple[int, float | None]]]:
    """{group: [(people, median ms from the previous step) per step]}; group "(all)" is everybody."""
    match = [step_matcher(s) for s in steps]
    n = len(steps)
    best_of: dict[str, tuple[list[int], str | None]] = {}
    for person, evs in people(lake).items():
        evs = [e for e in evs if any(m(e) for m in match)]
        attempts = []
        for anchor in evs:
            start, done = anchor["timestamp"], []
            if any_order:  # each step's earliest event at or after the anchor, all within the window
                for k in range(n):
                    t = min((e["timestamp"] for e in evs if match[k](e) and e["timestamp"] >= start),
                            default=None)
                    if t is None or t - start > window:
                        break
                    done.append(max([t, *done]))
            elif match[0](anchor):  # each next step strictly later than the one before, within the window
                done = [start]
                for k in range(1, n):
                    t = min((e["timestamp"] for e in evs if match[k](e) and e["timestamp"] > done[-1]),
                            default=None)
                    if t is None or t - start > window:
                        break
                    done.append(t)
            if done:
                group = prop(anchor, by) if by else None
                attempts.append((-len(done), start, group is None, group or "", done, group))
        if attempts:
            best = min(attempts, key=lambda a: a[:4])  # furthest; earliest; least group, none last
            best_of[person] = (best[4], best[5])
    out: dict[str, list[tuple[int, float | None]]] = {}
    groups: dict[str, list[list[int]]] = defaultdict(list)
    for done, group in best_of.values():
        groups["(all)"].append(done)
        if by:
            groups[group if group is not None else "(none)"].append(done)
    for group, journeys in groups.items():
        rows = []
        for k in range(n):
            reached = [d for d in journeys if len(d) > k]
            gaps = [d[k] - d[k - 1] for d in reached] if k else []
            rows.append((len(reached), float(statistics.median(gaps)) if gaps else None))
        out[group] = rows
    return out


def retention(lake: LakeWriter, weeks: int, types: tuple[str, ...] = ("track", "page", "screen")
              ) -> list[tuple[str, int, list[int | None]]]:
    """[(cohort Monday, people, returned on or after week 0..weeks or None when not yet known)]."""
    from datetime import UTC, datetime, timedelta

    firsts: dict[str, tuple[int, list[int]]] = {}
    for person, evs in people(lake).items():
        stamps = [e["timestamp"] for e in evs if e["type"] in types]
        if stamps:
            firsts[person] = (min(stamps), stamps)
    as_of = max(max(s) for _, s in firsts.values())
    cohorts: dict[str, list[tuple[int, list[int]]]] = defaultdict(list)
    for first, stamps in firsts.values():
        day = datetime.fromtimestamp(first / 1000, UTC).date()
        cohorts[(day - timedelta(days=day.weekday())).isoformat()].append((first, stamps))
    out = []
    for monday, members in sorted(cohorts.items()):
        start = int(datetime.fromisoformat(monday).replace(tzinfo=UTC).timestamp() * 1000)
        cells: list[int | None] = []
        for n in range(weeks + 1):
            known = n == 0 or start + (n + 1) * 7 * 86_400_000 <= as_of
            back = sum(1 for first, stamps in members if any(t >= first + n * 7 * 86_400_000 for t in stamps))
            cells.append(back if known else None)
        out.append((monday, len(members), cells))
    return out


def activation(lake: LakeWriter, window: int) -> dict[str, Any]:
    """Counts as :class:`analytics.activation.ActivationResult` has them, from the rows."""
    follow = survivor_of(lake)
    as_of = max(p["snapshot_at"] for p in lake.profiles)
    since = as_of - window
    profiles = {p["oneid"]: p for p in lake.profiles}
    fired: dict[str, set[str]] = defaultdict(set)
    for t in lake.triggers:
        if since < t["fired_at"] <= as_of and follow(t["oneid"]) in profiles:
            fired[follow(t["oneid"])].add(t["rule"])
    tagged = {o: json.loads(p["tags"]) for o, p in profiles.items()
              if since < p["as_of"] <= as_of and json.loads(p["tags"])}
    active = {o for o, p in profiles.items()
              if p["last_interaction"] is not None and since < p["last_interaction"] <= as_of}
    changes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in lake.segments:
        changes[(c["oneid"], c["segment"])].append(c)
    segmented: set[str] = set()
    for (oneid, _), rows in changes.items():
        rows.sort(key=lambda c: c["version"])
        before = [c for c in rows if c["changed_at"] <= since]
        member_at_start = bool(before) and before[-1]["type"] == "segment_entered"
        entered = any(c["type"] == "segment_entered" and since < c["changed_at"] <= as_of for c in rows)
        if (member_at_start or entered) and follow(oneid) in profiles:
            segmented.add(follow(oneid))
    activated = set(fired) | set(tagged) | segmented
    per_rule: dict[str, int] = defaultdict(int)
    for rules in fired.values():
        for rule in rules:
            per_rule[rule] += 1
    return {"profiles": len(profiles), "by_trigger": len(fired), "by_tag": len(tagged),
            "by_segment": len(segmented),
            "activated": len(activated), "active_untouched": len(active - activated), "rules": dict(per_rule)}


def predictiveness(lake: LakeWriter, thresholds: dict[str, float], conversion: str
                   ) -> list[tuple[float | None, int, int, float | None]]:
    """[(band's threshold or None, leads, converted, median ms from first crossing it to converting)]."""
    follow, match = survivor_of(lake), step_matcher(conversion)
    crossings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for t in lake.triggers:
        if t["rule"] in thresholds:
            crossings[follow(t["oneid"])].append((t["event_time"], thresholds[t["rule"]]))
    bands: dict[float | None, list[tuple[bool, int | None]]] = defaultdict(list)
    for person, evs in people(lake).items():
        if not any(i["type"] not in ("anonymous_id", "device_id") for e in evs for i in e["identifiers"]):
            continue
        at = next((e["timestamp"] for e in evs if match(e)), None)
        before = [(t, above) for t, above in crossings[person] if at is None or t < at]
        top = max((above for _, above in before), default=None)
        since = min((t for t, above in before if above == top), default=None)
        bands[top].append((at is not None, at - since if at is not None and since is not None else None))
    out = []
    for top in [None, *sorted(set(thresholds.values()))]:
        members = bands.get(top, [])
        waits = [w for converted, w in members if converted and w is not None]
        out.append((top, len(members), sum(c for c, _ in members),
                    float(statistics.median(waits)) if waits else None))
    return out
