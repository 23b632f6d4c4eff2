"""Out-of-fold training: inner folds, per-query RCS, calibration, τ per scenario and the fallback to a trivial policy."""

from __future__ import annotations

import numpy as np
import pytest

from ecvl_router.learning.bundle import load_bundle, save_bundle
from ecvl_router.learning.crossval import fold_strata
from ecvl_router.data.rsd import PairView
from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.labels import competence_labels
from ecvl_router.learning.crossval import inner_folds
from ecvl_router.learning.oof import fallback_choice, per_query_rcs, train_out_of_fold, trivial_tau
from ecvl_router.learning.training_set import TrainingSet, take_targets
from ecvl_router.routers import EnsembleRouter, ScoreTargets, create_router
from ecvl_router.scenarios import SCENARIOS, Scenario
from ecvl_router.learning.thresholds import ALL_CLOUD_TAU

from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

SCENARIO_LIST = list(SCENARIOS.values())


def gbdt(seed: int):
    return create_router("gbdt", random_state=seed, **SMALL_PARAMS["gbdt"])


def _noise_problem(n: int, seed: int, *, edge_share: float):
    """Features of the synthetic problem with scores that ignore them: labels carry no signal."""
    features, _, pair = synthetic_problem(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    score_edge = np.where(rng.random(n) < edge_share, 8.0, 3.0)
    noisy = PairView(**{**vars(pair), "score_edge": score_edge})
    return features, competence_labels(score_edge, noisy.score_cloud, mes=6.0), noisy


def _train(features, labels, pair, *, fallback_z, seed=0, folds=3, calibration="isotonic"):
    return train_out_of_fold(gbdt, TrainingSet(features, labels, labels, pair, fold_strata(pair.sources, labels, folds)), SCENARIO_LIST,
                             folds=folds, seed=seed, calibration=calibration, fallback_z=fallback_z)


@pytest.mark.parametrize(("edge_share", "expected"), [(0.97, "all-small"), (0.2, "all-large")])
def test_without_signal_it_falls_back_to_the_better_trivial_policy(edge_share, expected):
    features, labels, pair = _noise_problem(240, seed=4, edge_share=edge_share)
    trained = _train(features, labels, pair, fallback_z=1.0)
    assert isinstance(trained.router, EnsembleRouter) and len(trained.router.members) == 3
    assert trained.recipe == {"name": "oof", "folds": 3, "calibration": "isotonic", "fallback_z": 1.0}
    X_new, _, _ = _noise_problem(100, seed=9, edge_share=edge_share)
    for name in SCENARIOS:
        choice = trained.choice(name)
        assert choice.fallback == expected, name
        assert choice.tau == (0.0 if expected == "all-small" else ALL_CLOUD_TAU)
        to_edge, p, tau = trained.decide(X_new, name)
        assert ((p >= 0) & (p <= 1)).all()
        assert to_edge.all() if expected == "all-small" else not to_edge.any()
        # The kept RCS is that of the trivial policy on the training queries.
        trivial = np.full(len(pair), expected == "all-small")
        assert choice.rcs == pytest.approx(evaluate_decisions(trivial, pair, None, choice.scenario)["rcs"])


def test_without_signal_and_a_mixed_edge_share_it_mostly_falls_back():
    # 75 % of queries edge-competent, independent of the features: all-large is the better trivial policy in
    # every preset scenario and no router can beat it on new queries. With honest (cross-fitted) decisions a
    # z = 1 test keeps a router without signal in about one fit in six (one-sided normal tail 0.16).
    kept = 0
    for seed in range(10):
        features, labels, pair = _noise_problem(240, seed=seed, edge_share=0.75)
        trained = _train(features, labels, pair, fallback_z=1.0)
        kept += sum(choice.fallback is None for choice in trained.choices.values())
    assert kept <= 3  # of 30 (seed, scenario) fits: 0 measured; the in-sample test kept 18


def test_without_a_fallback_threshold_it_never_falls_back():
    features, labels, pair = _noise_problem(240, seed=4, edge_share=0.75)
    trained = _train(features, labels, pair, fallback_z=None)
    assert all(choice.fallback is None for choice in trained.choices.values())
    assert trained.recipe["fallback_z"] is None


def test_with_signal_it_keeps_the_router():
    features, labels, pair = synthetic_problem(240, seed=0)
    trained = _train(features, labels, pair, fallback_z=1.0)
    X_test, labels_test, pair_test = synthetic_problem(150, seed=1)
    for name in SCENARIOS:
        choice = trained.choice(name)
        assert choice.fallback is None, name
        assert 0 <= choice.tau <= 1
        to_edge, _, _ = trained.decide(X_test, name)
        assert 0 < to_edge.mean() < 1
        routed = evaluate_decisions(to_edge, pair_test, labels_test, choice.scenario)["rcs"]
        trivial = max(evaluate_decisions(np.full(len(pair_test), side), pair_test, None, choice.scenario)["rcs"] for side in (True, False))
        assert routed > trivial


def test_the_ensemble_is_the_calibrated_mean_of_fold_routers_trained_without_their_held_out_part(monkeypatch):
    features, labels, pair = synthetic_problem(120, seed=2)
    fitted_on: list[set[str]] = []
    original_fit = type(gbdt(0)).fit

    def recording_fit(self, X, y):
        fitted_on.append(set(X.item_ids.tolist()))
        return original_fit(self, X, y)

    monkeypatch.setattr(type(gbdt(0)), "fit", recording_fit)
    trained = _train(features, labels, pair, fallback_z=None, calibration="platt")
    ensemble = trained.router
    members = ensemble.members
    assert len(fitted_on) == 3
    assert all(len(ids) < len(pair) for ids in fitted_on)
    # Each query was left out by exactly one member.
    left_out = [set(pair.item_ids.tolist()) - ids for ids in fitted_on]
    assert sorted(i for ids in left_out for i in ids) == sorted(pair.item_ids.tolist())
    mean = np.mean([m.predict_proba(features) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.raw_proba(features), mean, atol=1e-12)
    calibration = ensemble.get_state()["calibration"]
    assert calibration.kind == "platt"
    np.testing.assert_allclose(ensemble.predict_proba(features), np.clip(calibration(mean), 0, 1), atol=1e-12)


def test_bundle_keeps_the_fallback_and_the_recipe(tmp_path):
    features, labels, pair = _noise_problem(150, seed=4, edge_share=0.97)
    trained = _train(features, labels, pair, fallback_z=1.0)
    assert {choice.fallback for choice in trained.choices.values()} == {"all-small"}
    save_bundle(trained, tmp_path / "bundle")
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.recipe == trained.recipe
    assert loaded.manifest["settings"]["recipe"]["name"] == "oof"
    for name in SCENARIOS:
        assert loaded.choice(name).fallback == trained.choice(name).fallback
        assert loaded.choice(name).tau == trained.choice(name).tau
        np.testing.assert_array_equal(loaded.decide(features, name)[0], trained.decide(features, name)[0])
        np.testing.assert_allclose(loaded.predict_proba(features, name), trained.predict_proba(features, name), atol=1e-12)


def test_multi_model_router_out_of_fold():
    features, labels, pair = synthetic_problem(120, seed=3)
    scores = np.column_stack([np.round(pair.score_edge), pair.score_cloud, np.round(np.clip(5 + 2 * features.text[:, 1], 1, 10))])
    targets = ScoreTargets(scores, ("edge-model", "cloud-model", "third"), "edge-model", "cloud-model", 6.0)

    def multi(seed: int):
        return create_router("ecvl-multi", random_state=seed, d_model=8, epochs=3, batch_size=32)

    trained = train_out_of_fold(multi, TrainingSet(features, targets, labels, pair, fold_strata(pair.sources, labels, 2)), SCENARIO_LIST[:1],
                                folds=2, seed=0, fallback_z=None)
    assert [m.name for m in trained.router.members] == ["ecvl-multi", "ecvl-multi"]
    p = trained.predict_proba(features, "quality")
    assert p.shape == (len(pair),) and ((p >= 0) & (p <= 1)).all()


# --- helpers --------------------------------------------------------------------------------------


def test_per_query_rcs_averages_to_the_rcs():
    _, _, pair = synthetic_problem(80, seed=5)
    rng = np.random.default_rng(0)
    scenario = Scenario(name="custom", mes=7.0, alpha=1.1, beta=0.3, gamma=0.01)
    for to_edge in (rng.random(80) < 0.5, np.ones(80, bool), np.zeros(80, bool)):
        per_query = per_query_rcs(to_edge, pair, scenario)
        assert per_query.shape == (80,)
        assert per_query.mean() == pytest.approx(evaluate_decisions(to_edge, pair, None, scenario)["rcs"], abs=1e-12)


def test_fallback_choice_compares_with_the_better_trivial_policy():
    features, labels, pair = synthetic_problem(200, seed=6)
    scenario = SCENARIOS["quality"]
    # Perfect probabilities beat both trivial policies by far.
    assert fallback_choice(labels.astype(bool), pair, scenario, z=1.0) is None
    # A router that sends everything to the edge gains nothing over all-small (or loses to all-large).
    choice = fallback_choice(np.ones(len(pair), bool), pair, scenario, z=1.0)
    small = per_query_rcs(np.ones(len(pair), bool), pair, scenario).mean()
    large = per_query_rcs(np.zeros(len(pair), bool), pair, scenario).mean()
    assert choice == ("all-small" if small > large else "all-large")
    assert trivial_tau(choice) == (0.0 if choice == "all-small" else ALL_CLOUD_TAU)


def test_inner_folds_partition_the_rows_even_with_rare_strata():
    strata = np.array(["a"] * 20 + ["b"] * 9 + ["rare"], dtype=object)
    for folds in (2, 5):
        parts = inner_folds(strata, folds, seed=1)
        assert len(parts) == folds
        held = np.concatenate([held for _, held in parts])
        assert sorted(held.tolist()) == list(range(len(strata)))
        for fit, held_rows in parts:
            assert len(np.intersect1d(fit, held_rows)) == 0 and len(fit) + len(held_rows) == len(strata)
    # Strata too small even when pooled fall back to unstratified folds.
    parts = inner_folds(np.array(["x", "y", "z", "w"], dtype=object), 2, seed=0)
    assert sorted(np.concatenate([h for _, h in parts]).tolist()) == [0, 1, 2, 3]


def test_take_targets():
    rows = np.array([2, 0])
    np.testing.assert_array_equal(take_targets(np.array([0, 1, 1]), rows), [1, 0])
    targets = ScoreTargets(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan]]), ("a", "b"), "a", "b", 3.0, "win-soft", 2.0)
    taken = take_targets(targets, rows)
    assert isinstance(taken, ScoreTargets) and len(taken) == 2
    np.testing.assert_array_equal(taken.scores, [[5.0, np.nan], [1.0, 2.0]])
    assert (taken.models, taken.edge, taken.cloud, taken.mes, taken.rule, taken.k) == (("a", "b"), "a", "b", 3.0, "win-soft", 2.0)
