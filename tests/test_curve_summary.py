"""Cost–quality curves summarised over folds: means, corrected intervals, the paired gap, random routing's row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ecvl_router.learning.crossval import corrected_interval
from ecvl_router.learning.curve_summary import (
    POINTS,
    RANDOM,
    curve_entries,
    summarise_curves,
)
from ecvl_router.learning.curves import cost_quality, oracle_cost_quality
from tests.test_curves import CLOUD, EDGE

# CLOUD mean 0.8, EDGE mean 0.4: the oracle's area above random is 0.2.
TIED = np.array([0.5, 0.5, 0.2, 0.2, 0.9])  # curve share 0.9
REVERSED = -(EDGE - CLOUD)  # curve share −1


def _rows(rankings: dict[str, list[np.ndarray]]) -> pd.DataFrame:
    rows = []
    for fold in range(len(next(iter(rankings.values())))):
        head = {"repeat": 0, "fold": fold, "scenario": "quality", "mes": 0.5}
        rows.append({**head, "policy": "all-large"})  # no ranking, no curve
        rows.append({**head, "policy": "oracle", **curve_entries(oracle_cost_quality(EDGE, CLOUD, 0.5))})
        for policy, ps in rankings.items():
            rows.append({**head, "policy": policy, **curve_entries(cost_quality(ps[fold], EDGE, CLOUD, 0.5))})
    return pd.DataFrame(rows)


def test_means_intervals_and_the_paired_gap_to_the_best_router():
    rows = _rows({"a": [TIED, EDGE - CLOUD], "b": [REVERSED, TIED]})  # a: 0.9, 1.0; b: −1.0, 0.9
    summary = summarise_curves(rows, test_share=0.5)
    shares = summary.shares[summary.shares["measure"] == "score"].set_index("policy")
    assert list(shares.index) == ["oracle", "a", "b", RANDOM]  # all-large ranks nothing
    assert shares.loc["a", "curve_share"] == pytest.approx(0.95)
    expected = corrected_interval([0.9, 1.0], 0.5)
    assert shares.loc["a", "curve_share_low"] == pytest.approx(expected.low)
    assert shares.loc["a", "curve_share_high"] == 1.0  # clipped: no ranking beats the oracle
    assert (shares["best_router"] == "a").all()
    gap = corrected_interval([-1.0 - 0.9, 0.9 - 1.0], 0.5)
    assert shares.loc["b", "gap"] == pytest.approx(gap.mean) and shares.loc["b", "gap_low"] == pytest.approx(gap.low)
    assert shares.loc["a", "gap"] == 0.0 and shares.loc["oracle", "gap"] == pytest.approx(0.05)
    # random routing: curve share 0, edge share at 95 % of 0.8 is 0.1 in both folds; the oracle's is 0.64
    assert shares.loc[RANDOM, "curve_share"] == 0.0 and shares.loc[RANDOM, "edge_95"] == pytest.approx(0.1)
    assert shares.loc["oracle", "edge_95"] == pytest.approx(0.64)
    assert shares.loc["oracle", "edge_95_vs_random"] == pytest.approx(6.4)
    assert shares.loc[RANDOM, "folds"] == 2 and (shares["folds"] == 2).all()


def test_points_are_the_mean_curves_and_random_is_the_line_between_their_ends():
    summary = summarise_curves(_rows({"a": [TIED, EDGE - CLOUD]}), test_share=0.5)
    points = summary.points[summary.points["measure"] == "score"]
    curves = points.pivot(index="share", columns="policy", values="quality")
    assert len(curves) == 101
    assert curves.loc[0.0].to_numpy() == pytest.approx(0.8) and curves.loc[1.0].to_numpy() == pytest.approx(0.4)
    assert curves.loc[0.5, RANDOM] == pytest.approx(0.6)
    assert curves.loc[0.2, "a"] == pytest.approx(1.0)  # both folds reach 1.0 at s = 0.2
    assert curves.loc[0.4, "oracle"] == pytest.approx(1.0)
    random = points[points["policy"] == RANDOM]
    assert (random["low"] == random["quality"]).all()  # the same line in both folds: no spread


def test_one_fold_has_means_without_bounds_and_no_rankings_give_empty_tables():
    summary = summarise_curves(_rows({"a": [TIED]}), test_share=0.0)
    row = summary.shares.set_index(["measure", "policy"]).loc[("score", "a")]
    assert row["curve_share"] == pytest.approx(0.9) and math.isnan(row["curve_share_low"])
    untouched = pd.DataFrame([{"repeat": 0, "fold": 0, "scenario": "quality", "mes": 0.5, "policy": "all-large"}])
    empty = summarise_curves(untouched, test_share=0.5)
    assert empty.shares.empty and empty.points.empty and POINTS not in untouched
