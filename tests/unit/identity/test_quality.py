from __future__ import annotations

import itertools
import random

import pytest

from identity.quality import score


def brute_force(predicted: dict[str, str | None], truth: dict[str, str]) -> tuple[int, int, int]:
    """(true positive, predicted, true) pair counts by looking at every pair."""
    tp = pred = true = 0
    for a, b in itertools.combinations(sorted(truth), 2):
        same_pred = predicted.get(a) is not None and predicted.get(a) == predicted.get(b)
        same_true = truth[a] == truth[b]
        tp += same_pred and same_true
        pred += same_pred
        true += same_true
    return tp, pred, true


def test_perfect_clustering_scores_one():
    truth = {"m1": "alice", "m2": "alice", "m3": "bob", "m4": "bob"}
    predicted = {"m1": "o1", "m2": "o1", "m3": "o2", "m4": "o2"}
    report = score(predicted, truth)
    assert (report.precision, report.recall, report.f1) == (1.0, 1.0, 1.0)
    assert report.true_pairs == 2 and report.predicted_pairs == 2
    assert report.split_persons == 0 and report.mixed_clusters == 0


def test_one_cluster_for_everyone_has_full_recall_and_low_precision():
    # alice: 3 events (3 pairs), bob: 2 events (1 pair); predicted one cluster of 5 (10 pairs)
    truth = {"a1": "alice", "a2": "alice", "a3": "alice", "b1": "bob", "b2": "bob"}
    predicted = dict.fromkeys(truth, "o1")
    report = score(predicted, truth)
    assert report.recall == 1.0
    assert report.precision == pytest.approx(4 / 10)
    assert report.f1 == pytest.approx(2 * 0.4 * 1.0 / 1.4)
    assert report.mixed_clusters == 1


def test_splitting_a_person_costs_recall_only():
    # alice's 4 events (6 true pairs) split 2 + 2: 2 predicted pairs, both true
    truth = {"a1": "alice", "a2": "alice", "a3": "alice", "a4": "alice"}
    predicted = {"a1": "o1", "a2": "o1", "a3": "o2", "a4": "o2"}
    report = score(predicted, truth)
    assert report.precision == 1.0
    assert report.recall == pytest.approx(2 / 6)
    assert report.split_persons == 1


def test_unresolved_events_are_singletons():
    truth = {"a1": "alice", "a2": "alice", "a3": "alice"}
    predicted = {"a1": "o1", "a2": "o1", "a3": None}
    report = score(predicted, truth)
    assert report.unresolved_events == 1
    assert report.precision == 1.0
    assert report.recall == pytest.approx(1 / 3)
    assert report.split_persons == 1
    # two unresolved events never form a pair with each other
    report = score({"a1": None}, {"a1": "alice", "a2": "alice"})
    assert report.predicted_pairs == 0 and report.precision == 1.0 and report.recall == 0.0


def test_messages_only_in_predicted_are_ignored():
    report = score({"a1": "o1", "a2": "o1", "x": "o1"}, {"a1": "alice", "a2": "alice"})
    assert report.events == 2 and report.predicted_pairs == 1 and report.precision == 1.0


def test_no_pairs_at_all_is_not_a_division_by_zero():
    report = score({"a": "o1"}, {"a": "alice"})
    assert report.precision == 1.0 and report.recall == 1.0 and report.true_pairs == 0


def test_contingency_counts_equal_brute_force_pair_counts():
    rng = random.Random(5)
    truth = {f"m{i}": f"p{rng.randrange(12)}" for i in range(150)}
    clusters = [f"o{i}" for i in range(15)] + [None]
    predicted = {m: rng.choice(clusters) for m in truth}
    report = score(predicted, truth)
    tp, pred, true = brute_force(predicted, truth)
    assert (report.true_positive_pairs, report.predicted_pairs, report.true_pairs) == (tp, pred, true)
    assert report.precision == pytest.approx(tp / pred)
    assert report.recall == pytest.approx(tp / true)


def test_as_dict_names_every_figure():
    report = score({"a": "o"}, {"a": "p"})
    assert set(report.as_dict()) >= {"precision", "recall", "f1", "true_pairs", "unresolved_events"}
