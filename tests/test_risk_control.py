"""Guaranteed scenarios: the drop p-value, fixed-sequence selection of tau, validity in simulation, YAML and bundles."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from ecvl_router.learning.bundle import load_bundle, save_bundle
from ecvl_router.data.rsd import PairView
from ecvl_router.learning.guarantee_check import check_guarantee, out_of_fold_probabilities, summarise
from ecvl_router.learning.risk_control import (
    GUARANTEE_GRID,
    certified,
    drop_counts,
    drop_pvalue,
    guaranteed_threshold,
    quality_drop,
)
from ecvl_router.routers import create_router
from ecvl_router.scenarios import SCENARIOS, Scenario, ScenarioError, load_scenarios
from ecvl_router.learning.training import search_threshold, train_router
from ecvl_router.learning.thresholds import ALL_CLOUD_TAU, THRESHOLD_GRID
from tests.routing_synthetic import synthetic_problem

GUARANTEED = Scenario(name="careful", mes=1, max_quality_drop=0.05, confidence=0.9)


def binary_pair(edge_ok: np.ndarray, cloud_ok: np.ndarray) -> PairView:
    """A pair view on a 0/1 score scale (MES 1) with the given per-query successes."""
    n = len(edge_ok)
    ids = np.array([f"q{i}" for i in range(n)], dtype=object)
    return PairView(
        edge="edge", cloud="cloud", item_ids=ids, sources=np.array(["s"] * n, dtype=object),
        score_edge=np.asarray(edge_ok, dtype=float), score_cloud=np.asarray(cloud_ok, dtype=float),
        latency_edge=np.ones(n), latency_cloud=np.full(n, 3.0), tokens_edge=np.full(n, np.nan),
        tokens_cloud=np.full(n, np.nan), missing_edge=0, missing_cloud=0,
    )


def exact_lower_tail(k: int, n: int, q: float) -> float:
    """P(Binom(n, q) <= k) in exact rational arithmetic."""
    q = Fraction(q)
    return float(sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(k + 1)))


@pytest.mark.parametrize(("worse", "n", "bound"), [(0, 30, 0.05), (3, 100, 0.05), (12, 150, 0.1), (40, 400, 0.02), (9, 9, 0.5)])
def test_pvalue_without_credit_is_the_exact_binomial_tail(worse, n, bound):
    exact = exact_lower_tail(worse, n, bound)
    assert drop_pvalue(worse, 0, n, bound, credit_share=0) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    # with no better queries the credit bound is 0, and its share of the level is spent for nothing
    assert drop_pvalue(worse, 0, n, bound, credit_share=0.5) == pytest.approx(min(1.0, 2 * exact), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("worse", "better", "n", "bound"), [(90, 45, 1500, 0.05), (20, 15, 300, 0.02), (24, 10, 200, 0.1)])
def test_pvalue_with_credit_is_where_the_clopper_pearson_bounds_meet(worse, better, n, bound):
    p = drop_pvalue(worse, better, n, bound)
    assert 0 < p < 1
    upper_worse = beta_dist.ppf(1 - p / 2, worse + 1, n - worse)  # one-sided CP bounds at level p/2 each
    lower_better = beta_dist.ppf(p / 2, better, n - better + 1)
    assert upper_worse - lower_better == pytest.approx(bound, abs=1e-7)
    assert drop_pvalue(worse, better + 5, n, bound) < p < drop_pvalue(worse + 5, better, n, bound)


@pytest.mark.parametrize(("p_worse", "p_better", "n"), [(0.05, 0.0, 150), (0.15, 0.10, 200), (0.40, 0.35, 120)])
def test_pvalue_is_valid_at_the_boundary_of_the_null(p_worse, p_better, n):
    rng = np.random.default_rng(7)
    counts = rng.multinomial(n, [p_worse, p_better, 1 - p_worse - p_better], size=3000)
    pvalues = np.array([drop_pvalue(int(w), int(b), n, 0.05) for w, b, _ in counts])
    for level in (0.05, 0.1, 0.2):
        rate = (pvalues <= level).mean()
        assert rate <= level + 3 * math.sqrt(level * (1 - level) / len(pvalues))


def non_monotone_problem() -> tuple[np.ndarray, PairView]:
    """p = 0.9: edge and cloud both right; p = 0.7: only the cloud right; p = 0.5: only the edge right."""
    p = np.repeat([0.9, 0.7, 0.5], [400, 60, 300])
    edge_ok = np.repeat([1, 0, 1], [400, 60, 300])
    cloud_ok = np.repeat([1, 1, 0], [400, 60, 300])
    return p, binary_pair(edge_ok, cloud_ok)


def test_guaranteed_tau_is_the_last_rejection_before_the_first_failure():
    p, pair = non_monotone_problem()
    choice = guaranteed_threshold(p, pair, GUARANTEED)
    level = 1 - GUARANTEED.confidence
    by_tau = dict(zip(GUARANTEE_GRID.tolist(), choice.pvalues))
    assert all(by_tau[tau] <= level for tau in GUARANTEE_GRID if tau > 0.7)
    assert by_tau[0.7] > level  # 60 of 760 queries worse: drop 0.079
    # the edge-only successes would bring the drop back to -0.32 at 0.5, but the sequence has stopped untested
    worse, better = drop_counts(p >= 0.5, pair, 1)
    assert drop_pvalue(int(worse), int(better), len(p), 0.05) <= level and math.isnan(by_tau[0.5])
    assert choice.tau == GUARANTEE_GRID[GUARANTEE_GRID > 0.7].min() and certified(choice.tau)
    assert guaranteed_threshold(p, pair, GUARANTEED, THRESHOLD_GRID).tau == 0.75  # an explicit grid is used as given
    assert choice.metrics["quality_drop"] == 0 and choice.metrics["ca"] == pytest.approx(400 / 760)
    assert choice.metrics["drop_pvalue"] == by_tau[choice.tau]
    dispatched = search_threshold(p, pair, GUARANTEED)
    assert dispatched.tau == choice.tau
    np.testing.assert_array_equal(dispatched.pvalues, choice.pvalues)


def test_all_cloud_when_nothing_is_rejected():
    p = np.full(200, 1.0)
    pair = binary_pair(np.zeros(200), np.ones(200))
    choice = guaranteed_threshold(p, pair, GUARANTEED)
    assert choice.tau == ALL_CLOUD_TAU and not certified(choice.tau)
    assert choice.metrics["ca"] == 0 and choice.metrics["quality_drop"] == 0 and math.isnan(choice.metrics["drop_pvalue"])
    assert choice.pvalues[-1] > 0.1 and np.isnan(choice.pvalues[:-1]).all()  # tau = 1 failed; nothing below it was tested


def test_drop_counts_and_quality_drop_match_apsp():
    rng = np.random.default_rng(3)
    pair = binary_pair(rng.random(300) < 0.5, rng.random(300) < 0.7)
    to_edge = rng.random(300) < 0.6
    worse, better = drop_counts(to_edge, pair, 1)
    apsp_routed = np.where(to_edge, pair.score_edge, pair.score_cloud).mean()
    assert quality_drop(to_edge, pair, 1) == pytest.approx(pair.score_cloud.mean() - apsp_routed)
    assert (worse - better) / 300 == pytest.approx(pair.score_cloud.mean() - apsp_routed)


def known_drop_sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, PairView]:
    """p ~ U(0, 1); the cloud succeeds with probability 0.8, the edge with probability p (independently)."""
    p = rng.random(n)
    return p, binary_pair(rng.random(n) < p, rng.random(n) < 0.8)


def true_drop(tau: float) -> float:
    """E[1[p >= tau] (0.8 - p)] for the sample above."""
    tau = min(tau, 1.0)
    return 0.8 * (1 - tau) - (1 - tau**2) / 2


def test_violation_rate_within_the_promise_in_simulation():
    rng = np.random.default_rng(11)
    scenario = Scenario(name="sim", mes=1, max_quality_drop=0.05, confidence=0.8)
    guaranteed, plug_in = [], []
    for _ in range(300):
        p, pair = known_drop_sample(400, rng)
        guaranteed.append(true_drop(guaranteed_threshold(p, pair, scenario).tau))
        drops = quality_drop(p[None, :] >= GUARANTEE_GRID[:, None], pair, 1)
        plug_in.append(true_drop(GUARANTEE_GRID[drops <= 0.05].min()))
    allowed = 0.2 + 2 * math.sqrt(0.2 * 0.8 / 300)
    assert np.mean(np.array(guaranteed) > 0.05) <= allowed
    assert np.mean(np.array(plug_in) > 0.05) > allowed  # the simulation does detect a tau chosen without a margin
    assert np.mean(guaranteed) > 0  # and the guarantee still routes to the edge


def test_guaranteed_scenario_yaml_defaults_and_validation(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("- {name: careful, mes: 6, max_quality_drop: 0.05, confidence: 0.9}\n- {name: lax, max_quality_drop: 0.1}\n")
    careful, lax = load_scenarios(path)
    assert careful.guaranteed and (careful.alpha, careful.beta, careful.gamma) == (0, 1, 0)
    assert lax.confidence == 0.9 and not SCENARIOS["quality"].guaranteed and SCENARIOS["quality"].promise() is None
    assert "at most 0.05 with confidence 0.9" in careful.promise() and "MES 6" in careful.promise()
    assert careful.with_mes(5).promise().count("MES 5") == 1
    for bad, field in [("max_quality_drop: 0", "max_quality_drop"), ("max_quality_drop: 1.2", "max_quality_drop"),
                       ("max_quality_drop: 0.05, confidence: 1", "confidence"), ("confidence: 0.9, alpha: 1, beta: 0, gamma: 0", "needs max_quality_drop"),
                       ("max_quality_drop: 0.05, cloud_allowed: false", "needs the cloud")]:
        path.write_text(f"- {{name: x, {bad}}}\n")
        with pytest.raises(ScenarioError, match=field):
            load_scenarios(path)


def test_bundle_round_trip_keeps_the_promise_and_the_certified_tau(tmp_path):
    X, y, _ = synthetic_problem(300, seed=31)
    X_val, _, pair_val = synthetic_problem(300, seed=32)
    guaranteed = Scenario(name="careful", mes=6, max_quality_drop=0.05, confidence=0.9)
    trained = train_router(create_router("gbdt", max_iter=30, random_state=1), X, y, X_val, pair_val,
                           [guaranteed, SCENARIOS["quality"]], edge_share=0.9)
    choice = trained.choice("careful")
    p_val = trained.predict_proba(X_val, "careful")
    assert choice.threshold.tau == guaranteed_threshold(p_val, pair_val, guaranteed).tau  # edge_share does not apply
    assert certified(choice.tau) and choice.threshold.metrics["quality_drop"] <= 0.05
    loaded = load_bundle(save_bundle(trained, tmp_path / "bundle"))
    again = loaded.choice("careful")
    assert again.scenario == guaranteed and again.tau == choice.tau
    np.testing.assert_array_equal(again.threshold.pvalues, choice.threshold.pvalues)
    assert loaded.choice("quality").threshold.pvalues.size == 0
    entry = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["scenarios"]
    assert entry["careful"]["promise"] == guaranteed.promise() and "promise" not in entry["quality"]


def test_check_on_out_of_fold_probabilities_reports_every_policy():
    X, labels, pair = synthetic_problem(600, seed=41)
    p = out_of_fold_probabilities(lambda s: create_router("gbdt", max_iter=20, random_state=s), X, labels, labels, pair.sources, folds=3)
    assert p.shape == (600,) and np.corrcoef(p, pair.score_edge)[0, 1] > 0.5
    rows = check_guarantee(p, pair, mes=6, max_drops=[0.05], confidences=[0.9], reference=SCENARIOS["quality"], repetitions=20)
    summary = summarise(rows).set_index("policy")
    assert len(rows) == 4 * 20 and set(summary.index) == {"guaranteed", "plug-in", "matched", "rcs"}
    assert summary.loc["guaranteed", "within_bound"] and summary.loc["guaranteed", "edge_share"] > 0.3
    assert summary.loc["matched", "edge_share"] == pytest.approx(summary.loc["guaranteed", "edge_share"], abs=0.05)
