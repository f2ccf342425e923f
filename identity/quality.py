"""Pairwise precision and recall of predicted person clusters against ground truth.

Two events form a pair when they belong to the same cluster. Precision is the share of
predicted pairs that are true pairs, recall the share of true pairs that were predicted.
Counting pairs one by one is O(n^2); summing C(n, 2) over the contingency table of
(predicted cluster, true person) counts gives the same numbers in O(n).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


@dataclass(frozen=True, slots=True)
class QualityReport:
    """How well predicted clusters match the true people, with the counts behind the ratios."""

    precision: float
    recall: float
    f1: float
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    events: int
    unresolved_events: int  # events without a predicted cluster: each scored as its own cluster
    predicted_clusters: int
    true_clusters: int
    split_persons: int  # true people spread over more than one predicted cluster
    mixed_clusters: int  # predicted clusters holding events of more than one true person

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


def score(predicted: Mapping[str, str | None], truth: Mapping[str, str]) -> QualityReport:
    """Score ``{message_id: cluster}`` against ``{message_id: true person}``.

    Every message of ``truth`` is scored; one missing from ``predicted`` (or predicted None)
    is a cluster of its own, so it costs recall and never precision. Messages only in
    ``predicted`` are ignored. Use the final OneIDs (aliases resolved) as clusters.
    """
    joint: Counter[tuple[str, str]] = Counter()
    clusters: Counter[str] = Counter()
    people: Counter[str] = Counter()
    unresolved = 0
    for message_id, person in truth.items():
        people[person] += 1
        cluster = predicted.get(message_id)
        if cluster is None:
            unresolved += 1
            continue
        clusters[cluster] += 1
        joint[(cluster, person)] += 1
    tp = sum(_pairs(n) for n in joint.values())
    predicted_pairs = sum(_pairs(n) for n in clusters.values())
    true_pairs = sum(_pairs(n) for n in people.values())
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    persons_per_cluster: Counter[str] = Counter(cluster for cluster, _ in joint)
    clusters_per_person: Counter[str] = Counter(person for _, person in joint)
    for message_id, person in truth.items():
        if predicted.get(message_id) is None:
            clusters_per_person[person] += 1  # an unresolved event is a cluster of its own
    return QualityReport(
        precision=precision,
        recall=recall,
        f1=f1,
        true_positive_pairs=tp,
        predicted_pairs=predicted_pairs,
        true_pairs=true_pairs,
        events=len(truth),
        unresolved_events=unresolved,
        predicted_clusters=len(clusters) + unresolved,
        true_clusters=len(people),
        split_persons=sum(1 for n in clusters_per_person.values() if n > 1),
        mixed_clusters=sum(1 for n in persons_per_cluster.values() if n > 1),
    )
