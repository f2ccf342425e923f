"""Resolution quality on synthetic traffic with known people, on the real Redis."""

from __future__ import annotations

import uuid
from collections import Counter

from identity.graph import IdentityGraph
from identity.quality import score
from identity.rules import load_rules
from identity.synthetic import generate
from tests.conftest import TEST_PSEUDONYMS


def resolve_all(graph: IdentityGraph, events: list[dict], batch: int = 500) -> tuple[dict, Counter, int, int]:
    oneids: list[str | None] = []
    reasons: Counter[str] = Counter()
    merges = moves = 0
    for i in range(0, len(events), batch):
        result = graph.resolve_batch(events[i : i + batch])
        oneids += result.oneids
        reasons.update(r["reason"] for r in result.rejections)
        merges += len(result.merges)
        moves += len(result.moves)
    final = graph.resolve_aliases({o for o in oneids if o})
    predicted = {e["message_id"]: final[o] if o else None for e, o in zip(events, oneids, strict=True)}
    return predicted, reasons, merges, moves


def test_precision_and_recall_on_300_people(redis_client, settings):
    events, truth = generate(300, seed=2024)
    prefix = f"{settings.redis_prefix}quality:{uuid.uuid4().hex[:6]}:"
    graph = IdentityGraph(redis_client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    predicted, reasons, merges, moves = resolve_all(graph, events)
    report = score(predicted, truth)
    # the traffic really exercised the hard cases
    assert merges > 100 and moves > 0
    assert reasons["blocked"] > 0 and reasons["frequency_guard"] > 0
    assert report.precision >= 0.99, report
    assert report.recall >= 0.99, report
    assert graph.check_consistency() == []
