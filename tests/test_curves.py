"""Cost–quality curves on hand-made queries whose curves, areas and crossings are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecvl_router.learning.curves import (
    GRID,
    cost_quality,
    curve_columns,
    curve_share,
    edge_share_at_quality,
    oracle_cost_quality,
    oracle_curve,
    random_curve,
    ranking_curve,
)

# Five queries: the cloud answers four of them (mean 0.8), the edge two (mean 0.4); gains e − c = 0, −1, −1, −1, +1.
CLOUD = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
EDGE = np.array([1.0, 0.0, 0.0, 0.0, 1.0])
FIFTHS = np.linspace(0, 1, 6)


def test_the_oracle_sends_the_edge_wins_first_then_the_draws():
    oracle = oracle_curve(EDGE, CLOUD)  # equal gains form blocks: knots where the gain changes
    assert oracle.shares == pytest.approx([0, 0.2, 0.4, 1.0])
    assert oracle.at(FIFTHS) == pytest.approx([0.8, 1.0, 1.0, 0.8, 0.6, 0.4])
    # curve − line at the knots: 0, .28, .36, .24, .12, 0; trapezoids of width 0.2
    assert oracle.area_above_random() == pytest.approx(0.2)
    assert oracle.at([0.1, 0.7]) == pytest.approx([0.9, 0.7])
    assert curve_share(oracle, oracle) == 1.0


def test_a_router_ranking_like_the_oracle_has_share_one_and_the_reverse_minus_one():
    gains = EDGE - CLOUD
    oracle = oracle_curve(EDGE, CLOUD)
    assert curve_share(ranking_curve(0.5 + gains / 4, EDGE, CLOUD), oracle) == pytest.approx(1.0)
    reverse = ranking_curve(-gains, EDGE, CLOUD)
    assert reverse.at(FIFTHS) == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.2, 0.4])
    assert curve_share(reverse, oracle) == pytest.approx(-1.0)


def test_ties_form_one_block_whose_part_is_drawn_at_random():
    p = np.array([0.5, 0.5, 0.2, 0.2, 0.9])  # query 4 (+1) first, then the block {0, 1} (0, −1), then {2, 3} (−1, −1)
    curve = ranking_curve(p, EDGE, CLOUD)
    assert curve.shares == pytest.approx([0, 0.2, 0.6, 1.0])
    assert curve.quality == pytest.approx([0.8, 1.0, 0.8, 0.4])
    # curve − line at the knots: 0, .28, .24, 0 → .028 + .104 + .048
    assert curve.area_above_random() == pytest.approx(0.18)
    assert curve_share(curve, oracle_curve(EDGE, CLOUD)) == pytest.approx(0.9)
    order = np.array([1, 0, 3, 2, 4])  # the rows' order within a tie changes nothing
    shuffled = ranking_curve(p[order], EDGE[order], CLOUD[order])
    assert shuffled.at(GRID) == pytest.approx(curve.at(GRID))


def test_a_constant_p_is_random_routing():
    curve = ranking_curve(np.full(5, 0.3), EDGE, CLOUD)
    assert curve.at(GRID) == pytest.approx(random_curve(EDGE, CLOUD).at(GRID))
    assert curve_share(curve, oracle_curve(EDGE, CLOUD)) == pytest.approx(0.0, abs=1e-12)


def test_a_random_order_is_near_zero():
    rng = np.random.default_rng(0)
    cloud, edge = (rng.random(20_000) < 0.6).astype(float), (rng.random(20_000) < 0.4).astype(float)
    share = curve_share(ranking_curve(rng.random(20_000), edge, cloud), oracle_curve(edge, cloud))
    assert abs(share) < 0.05


def test_edge_share_kept_is_the_largest_share_still_at_the_target():
    oracle = oracle_curve(EDGE, CLOUD)
    # 95 % of 0.8 is 0.76: the oracle is at 0.8 at s = 0.6 and 0.6 at s = 0.8 → 0.6 + 0.2 · 0.04 / 0.2
    assert edge_share_at_quality(oracle, 0.95) == pytest.approx(0.64)
    assert edge_share_at_quality(oracle, 0.90) == pytest.approx(0.68)
    line = random_curve(EDGE, CLOUD)  # 0.8 − 0.4 s
    assert edge_share_at_quality(line, 0.95) == pytest.approx(0.1)
    assert edge_share_at_quality(line, 0.90) == pytest.approx(0.2)
    # a curve that dips below the target and comes back: the last share at the target counts, not the first crossing
    dip = ranking_curve(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([0, 1, 1, 1, 1.0]), np.array([1, 0, 1, 1, 1.0]))
    assert dip.quality == pytest.approx([0.8, 0.6, 0.8, 0.8, 0.8, 0.8])
    assert edge_share_at_quality(dip, 0.95) == 1.0
    start = ranking_curve(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), np.array([0, 1, 1, 1, 1.0]), np.ones(5))
    assert start.quality == pytest.approx([1.0, 0.8, 0.8, 0.8, 0.8, 0.8])
    assert edge_share_at_quality(start, 0.9) == pytest.approx(0.1)  # 1.0 → 0.8 over the first fifth crosses 0.9 halfway

def test_an_edge_as_good_as_the_cloud_keeps_everything_and_a_zero_cloud_has_no_target():
    same = np.array([1.0, 0.0, 1.0])
    assert edge_share_at_quality(ranking_curve(np.arange(3.0), same, same), 0.95) == 1.0
    assert math.isnan(edge_share_at_quality(random_curve(np.ones(3), np.zeros(3)), 0.95))
    assert math.isnan(curve_share(random_curve(same, same), oracle_curve(same, same)))  # no headroom


def test_cost_quality_on_a_score_scale_and_at_the_mes():
    cloud, edge = np.array([2.0, 2.0, 1.0, 0.0]), np.array([2.0, 0.0, 2.0, 1.0])
    p = np.array([0.9, 0.1, 0.8, 0.2])
    result = cost_quality(p, edge, cloud, mes=1.5)
    assert set(result.columns()) == set(curve_columns("score")) | set(curve_columns("apsp"))
    # scores: gains 0, −2, +1, +1 in p's order 0, 2, 3, 1 → means 1.25, 1.25, 1.5, 1.75, 1.25
    assert result.ranking["score"].quality == pytest.approx([1.25, 1.25, 1.5, 1.75, 1.25])
    # APSP at 1.5: cloud passes 1, 1, 0, 0, edge 1, 0, 1, 0 → gains 0, −1, +1, 0 → 0.5, 0.5, 0.75, 0.75, 0.5
    assert result.ranking["apsp"].quality == pytest.approx([0.5, 0.5, 0.75, 0.75, 0.5])
    columns = result.columns()
    # oracle on APSP: 0.5, 0.75, 0.75, 0.75, 0.5 (area .1875); the router's area .125
    assert columns["curve_share_apsp"] == pytest.approx(0.125 / 0.1875)
    assert columns["edge_95_apsp"] == 1.0 and columns["random_edge_95_apsp"] == 1.0
    # random on scores: 1.25 flat → everything kept; the router never falls below 1.25
    assert columns["edge_90_score"] == 1.0
    assert result.points()["score"][[0, 50, 100]] == pytest.approx([1.25, 1.5, 1.25])
    oracle = oracle_cost_quality(edge, cloud, mes=1.5).columns()
    assert oracle["curve_share_score"] == 1.0 and oracle["curve_share_apsp"] == 1.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one length"):
        ranking_curve(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="row 1"):
        ranking_curve(np.array([0.1, np.nan]), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="at least one query"):
        ranking_curve(np.zeros(0), np.zeros(0), np.zeros(0))
