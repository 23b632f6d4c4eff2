"""The privileged yardstick of benchmarks/privileged_ceiling.py: per-group Bayes decisions learned on training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.privileged_ceiling import group_decisions, other_models_success
from ecvl_router.data.rsd import PairView
from ecvl_router.scenarios import SCENARIOS


def binary_pair(edge_ok: list[int], cloud_ok: list[int]) -> PairView:
    """A pair view on a 0/1 score scale with equal latencies, so only APSP and CA decide."""
    n = len(edge_ok)
    return PairView(
        edge="edge", cloud="cloud", item_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        sources=np.array(["s"] * n, dtype=object), score_edge=np.asarray(edge_ok, dtype=float),
        score_cloud=np.asarray(cloud_ok, dtype=float), latency_edge=np.ones(n), latency_cloud=np.ones(n),
        tokens_edge=np.full(n, np.nan), tokens_cloud=np.full(n, np.nan), missing_edge=0, missing_cloud=0,
    )


def test_each_group_gets_the_decision_with_the_higher_training_rcs_and_unseen_groups_the_better_trivial_one():
    quality = SCENARIOS["quality"].with_mes(1)
    # group "hard": both fail (edge saves CA); group "mid": only the cloud succeeds; group "easy": both succeed
    groups = np.array(["hard"] * 4 + ["mid"] * 4 + ["easy"] * 4 + ["new"] * 2, dtype=object)
    pair = binary_pair([0] * 4 + [0] * 4 + [1] * 4 + [0, 0], [0] * 4 + [1] * 4 + [1] * 4 + [1, 1])
    train, test = np.arange(12), np.array([0, 4, 8, 12, 13])
    decisions = group_decisions(groups, pair, quality, train, test)
    # unseen "new": over all training rows the edge loses 1.2 on 4 queries and gains 0.1 on 12, so the cloud
    assert decisions.tolist() == [True, False, True, False, False]


def test_the_test_rows_outcomes_are_never_read():
    quality = SCENARIOS["quality"].with_mes(1)
    groups = np.array(["a"] * 6, dtype=object)
    train, test = np.arange(4), np.arange(4, 6)
    edge_wins = group_decisions(groups, binary_pair([1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]), quality, train, test)
    flipped = group_decisions(groups, binary_pair([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]), quality, train, test)
    assert edge_wins.tolist() == flipped.tolist() == [True, True]


class _Responses:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.responses, self.root = frame, "dataset"


def test_other_models_success_counts_only_the_models_outside_the_pair():
    frame = pd.DataFrame({
        "item_id": ["x"] * 4 + ["y"] * 4,
        "model": ["edge", "cloud", "m1", "m2"] * 2,
        "score": [9, 9, 7, 2, 1, 1, 7, 7],
    })
    share = other_models_success(_Responses(frame), np.array(["y", "x"]), ("edge", "cloud"), mes=6)  # type: ignore[arg-type]
    assert share.tolist() == [1.0, 0.5]
    with pytest.raises(SystemExit, match="no other model answered 1 item"):
        other_models_success(_Responses(frame), np.array(["x", "z"]), ("edge", "cloud"), mes=6)  # type: ignore[arg-type]
