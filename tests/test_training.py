"""Shared training: the tau grid search, edge-share calibration, per-scenario best epochs, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.routers import create_router
from ecvl_router.scenarios import SCENARIOS, Scenario
from ecvl_router.learning.training import search_threshold, train_router
from ecvl_router.learning.thresholds import THRESHOLD_GRID, threshold_for_edge_share
from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

PRESETS = list(SCENARIOS.values())


@pytest.fixture(scope="module")
def data():
    X, y, _ = synthetic_problem(400, seed=11)
    X_val, y_val, pair_val = synthetic_problem(200, seed=12)
    return X, y, X_val, y_val, pair_val


def brute_force_tau(p, pair, scenario, grid):
    """The smallest tau of the grid with the highest RCS, computed query by query in plain Python."""
    best_tau, best_rcs = None, -float("inf")
    n = len(p)
    for tau in grid:
        solved = edge = latency = 0.0
        for i in range(n):
            to_edge = p[i] >= tau
            score = pair.score_edge[i] if to_edge else pair.score_cloud[i]
            solved += score >= scenario.mes
            edge += to_edge
            latency += pair.latency_edge[i] if to_edge else pair.latency_cloud[i]
        rcs = scenario.alpha * solved / n + scenario.beta * edge / n - scenario.gamma * latency / n
        if rcs > best_rcs + 1e-12:
            best_tau, best_rcs = tau, rcs
    return best_tau, best_rcs


def test_grid_is_the_papers():
    assert len(THRESHOLD_GRID) == 21 and THRESHOLD_GRID[0] == 0.0 and THRESHOLD_GRID[-1] == 1.0
    assert [float(t) for t in THRESHOLD_GRID] == [round(i * 0.05, 2) for i in range(21)]
    assert 0.15 in THRESHOLD_GRID and 0.7 in THRESHOLD_GRID


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scenario", PRESETS + [Scenario(name="custom", mes=7, alpha=0.5, beta=0.4, gamma=0.05)], ids=lambda s: s.name)
def test_search_returns_the_brute_force_argmax(seed, scenario, data):
    rng = np.random.default_rng(seed)
    pair = data[4]
    p = np.clip(rng.beta(2, 2, size=len(pair)) + 0.3 * (pair.score_edge >= 6) - 0.15, 0, 1)
    if seed % 2:
        p = np.round(p, 1)  # many queries on grid values: ties in p and plateaus of RCS
    choice = search_threshold(p, pair, scenario)
    tau, rcs = brute_force_tau(p, pair, scenario, [float(t) for t in THRESHOLD_GRID])
    assert choice.tau == tau
    assert choice.rcs == pytest.approx(rcs, abs=1e-12)
    assert choice.metrics["ca"] == pytest.approx(np.mean(p >= tau))
    assert len(choice.rcs_by_tau) == len(THRESHOLD_GRID) and choice.rcs == pytest.approx(choice.rcs_by_tau.max())


def test_ties_go_to_the_smallest_threshold(data):
    pair = data[4]
    p = np.full(len(pair), 0.42)
    edge_only = Scenario(name="edge-only", alpha=0, beta=1, gamma=0)
    assert search_threshold(p, pair, edge_only).tau == 0.0  # every tau <= 0.42 routes all to the edge
    cloud_best = Scenario(name="apsp-only", alpha=1, beta=0, gamma=0)
    assert search_threshold(p, pair, cloud_best).tau == 0.45  # the smallest tau that routes all to the cloud


def test_a_scenario_without_cloud_keeps_every_query_on_the_edge(data):
    pair = data[4]
    private = Scenario(name="private", alpha=1.2, beta=0.1, gamma=0.001, cloud_allowed=False)
    choice = search_threshold(np.random.default_rng(0).random(len(pair)), pair, private)
    assert choice.tau == 0.0 and choice.metrics["ca"] == 1.0


def test_search_checks_its_inputs(data):
    pair = data[4]
    with pytest.raises(ValueError, match="199 probabilities for 200 queries"):
        search_threshold(np.zeros(199), pair, PRESETS[0])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        search_threshold(np.full(200, 1.5), pair, PRESETS[0])


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.83, 1.0])
def test_edge_share_calibration_hits_the_share(share):
    p = np.random.default_rng(3).random(1000)
    tau = threshold_for_edge_share(p, share)
    assert np.mean(p >= tau) == round(share * 1000) / 1000


def test_edge_share_routes_ties_together():
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    assert threshold_for_edge_share(p, 0.4) == 0.5  # k = 2 falls inside the tie of three
    assert np.mean(p >= threshold_for_edge_share(p, 0.4)) == 0.8
    with pytest.raises(ValueError, match=r"edge share must lie in \[0, 1\]"):
        threshold_for_edge_share(p, 1.5)


SPLIT_SCENARIOS = [
    Scenario(name="quality-only", alpha=1.0, beta=0.0, gamma=0.0),
    Scenario(name="edge-lover", alpha=0.2, beta=1.0, gamma=0.0),
    SCENARIOS["speed"],
]


@pytest.fixture(scope="module")
def trained(data):
    X, y, X_val, _, pair_val = data
    router = create_router("mlp", **{**SMALL_PARAMS["mlp"], "epochs": 6, "learning_rate": 2e-3})
    calls = []
    result = train_router(router, X, y, X_val, pair_val, SPLIT_SCENARIOS, progress=lambda done, total: calls.append((done, total)))
    return result, calls


def test_each_scenario_keeps_its_own_best_epoch_and_tau(data, trained):
    result, _ = trained
    _, _, X_val, _, pair_val = data
    for scenario in SPLIT_SCENARIOS:
        history = result.history[scenario.name]
        assert [r.epoch for r in history] == list(range(6))
        rcs = np.array([r.rcs for r in history])
        choice = result.choice(scenario.name)
        assert choice.epoch == int(np.argmax(rcs)) and choice.rcs == rcs.max()
        assert choice.tau == history[choice.epoch].tau
        # the kept state reproduces the validation RCS* of that scenario's best epoch at its tau*
        to_edge, p, tau = result.decide(X_val, scenario.name)
        assert tau == choice.tau and np.array_equal(to_edge, p >= tau)
        assert evaluate_decisions(to_edge, pair_val, None, scenario)["rcs"] == pytest.approx(choice.rcs, abs=1e-12)
    assert result.choice("edge-lover").tau < result.choice("quality-only").tau
    assert len({c.epoch for c in result.choices.values()}) > 1  # the scenarios really kept different epochs
    assert set(result.states) == {c.epoch for c in result.choices.values()}


def test_progress_is_reported_after_every_epoch(trained):
    _, calls = trained
    assert calls == [(epoch, 6) for epoch in range(1, 7)]


def test_fixed_policies_keep_their_threshold(data):
    X, y, X_val, _, pair_val = data
    for name, ca in (("all-large", 0.0), ("all-small", 1.0), ("random", None)):
        result = train_router(create_router(name), X, y, X_val, pair_val, PRESETS)
        for scenario in PRESETS:
            choice = result.choice(scenario.name)
            assert choice.tau == 0.5 and choice.epoch == 0
            if ca is not None:
                assert choice.threshold.metrics["ca"] == ca


def test_edge_share_calibrates_tau_every_epoch(data):
    X, y, X_val, _, pair_val = data
    router = create_router("mf", **{**SMALL_PARAMS["mf"], "epochs": 3})
    result = train_router(router, X, y, X_val, pair_val, PRESETS, edge_share=0.7)
    for scenario in PRESETS:
        choice = result.choice(scenario.name)
        assert choice.threshold.metrics["ca"] == pytest.approx(0.7, abs=0.01)
        assert choice.rcs == max(r.rcs for r in result.history[scenario.name])


def test_train_router_checks_its_inputs(data):
    X, y, X_val, _, pair_val = data
    router = create_router("all-small")
    with pytest.raises(ValueError, match="validation features have 199 queries but the validation pair has 200"):
        train_router(router, X, y, X_val.take(np.arange(199)), pair_val, PRESETS)
    shuffled = X_val.take(np.r_[1, 0, np.arange(2, len(X_val))])
    with pytest.raises(ValueError, match="not aligned: row 0 is item 's12-q1' in the features and 's12-q0' in the pair"):
        train_router(router, X, y, shuffled, pair_val, PRESETS)
    with pytest.raises(ValueError, match="at least one scenario"):
        train_router(router, X, y, X_val, pair_val, [])
    with pytest.raises(ValueError, match="'quality' appears twice"):
        train_router(router, X, y, X_val, pair_val, [PRESETS[0], PRESETS[0]])
    with pytest.raises(ValueError, match="y has 400 labels but X has 399"):
        train_router(router, X.take(np.arange(399)), y, X_val, pair_val, PRESETS)


def test_unknown_scenario_lists_the_trained_ones(trained, data):
    result, _ = trained
    with pytest.raises(KeyError, match="not trained for scenario 'nope'; it knows quality-only, edge-lover, speed"):
        result.decide(data[2], "nope")


def test_decisions_do_not_depend_on_the_order_of_scenario_queries(trained, data):
    result, _ = trained
    X_val = data[2]
    first = result.predict_proba(X_val, "quality-only")
    result.predict_proba(X_val, "edge-lover")
    np.testing.assert_array_equal(result.predict_proba(X_val, "quality-only"), first)
