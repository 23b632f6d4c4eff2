"""The multi-model ordinal router (ecvl-multi) and the competence it derives from predicted score distributions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecvl_router.labels import competence_labels
from ecvl_router.learning.training_set import TrainingSet
from ecvl_router.routers import ECVLMultiRouter, ScoreTargets, competence_from_distributions, create_router, load_router
from ecvl_router.routers.ensemble import Calibration, EnsembleRouter

from tests.routing_synthetic import synthetic_problem

MODELS = ("edge-model", "cloud-model", "third")
PARAMS = {"d_model": 16, "epochs": 12, "batch_size": 32, "learning_rate": 1e-2, "dropout": 0.1}


def _targets(n: int, seed: int, *, mes: float = 6.0):
    """Features, ScoreTargets over three models (integer scores 1..10), and the (edge, cloud) labels at ``mes``."""
    features, _, pair = synthetic_problem(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    edge = np.round(pair.score_edge)  # rises with a hidden signal of text, image and statistics
    cloud = rng.integers(6, 10, size=n).astype(np.float64)  # noise around 7.5: carries no signal
    third = np.round(np.clip(5 + 2.5 * features.text[:, 1], 1, 10))  # depends on another text feature
    scores = np.column_stack([edge, cloud, third])
    scores[rng.random(n) < 0.1, 2] = np.nan  # the third model lacks some answers
    targets = ScoreTargets(scores, MODELS, "edge-model", "cloud-model", mes)
    return features, targets, competence_labels(edge, cloud, mes=mes)


def fitted_and_held_out(router):
    """``router`` fitted on 320 queries of seed 0, with 200 held-out queries of seed 1 (features, targets, labels)."""
    features, targets, _ = _targets(320, seed=0)
    return (router.fit(features, targets), *_targets(200, seed=1))


@pytest.fixture(scope="module")
def fitted():
    return fitted_and_held_out(ECVLMultiRouter(random_state=0, **PARAMS))


def _at_least(values: np.ndarray, distribution: np.ndarray, threshold: float) -> np.ndarray:
    return distribution[:, values >= threshold].sum(axis=1)


def test_score_distributions_are_distributions_and_their_tails_fall_with_the_level(fitted):
    router, X, _, _ = fitted
    values = router.score_values
    assert list(values) == sorted(set(values)) and values[0] == 1 and values[-1] == 10
    for model in MODELS:
        distribution = router.score_distribution(X, model)
        assert distribution.shape == (len(X), len(values))
        assert (distribution >= 0).all() and (distribution <= 1).all()
        np.testing.assert_allclose(distribution.sum(axis=1), 1.0, atol=1e-9)
        tails = np.cumsum(distribution[:, ::-1], axis=1)[:, ::-1]  # P(score >= v_j)
        np.testing.assert_allclose(tails[:, 0], 1.0, atol=1e-9)
        assert (np.diff(tails, axis=1) <= 1e-12).all()


@pytest.mark.parametrize("mes", [1.0, 4.0, 5.5, 6.0, 8.0, 10.0, 10.5])
def test_competence_at_any_mes_is_eq2_on_the_predicted_distributions(fitted, mes):
    router, X, _, _ = fitted
    values = router.score_values
    p_edge, p_cloud = router.score_distribution(X, "edge-model"), router.score_distribution(X, "cloud-model")
    expected = 1 - _at_least(values, p_cloud, mes) * (1 - _at_least(values, p_edge, mes))
    np.testing.assert_allclose(router.competence(X, edge="edge-model", cloud="cloud-model", mes=mes), expected, atol=1e-12)


def test_predict_proba_is_the_fitted_pairs_competence(fitted):
    router, X, _, _ = fitted
    p = router.predict_proba(X)
    assert p.shape == (len(X),) and p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal(p, router.competence(X, edge="edge-model", cloud="cloud-model", mes=6.0))


@pytest.mark.parametrize(("rule", "k"), [("win-hard", 0.0), ("win-soft", 1.0), ("win-soft", 2.5)])
def test_win_rules_equal_a_brute_force_double_sum(fitted, rule, k):
    router, X, _, _ = fitted
    values = router.score_values
    p_edge, p_cloud = router.score_distribution(X, "third"), router.score_distribution(X, "edge-model")
    margin = k if rule == "win-soft" else 0.0
    expected = np.zeros(len(X))
    for i, v_cloud in enumerate(values):
        for j, v_edge in enumerate(values):
            if v_edge >= v_cloud - margin:
                expected += p_cloud[:, i] * p_edge[:, j]
    got = router.competence(X, edge="third", cloud="edge-model", mes=6.0, rule=rule, k=k)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_competence_from_distributions_on_hand_made_distributions():
    values = np.array([1.0, 2.0, 3.0])
    p_edge = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    p_cloud = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    # MES 2: P(cloud >= 2) = 0.9 / 1, P(edge >= 2) = 0.8 / 0.
    np.testing.assert_allclose(competence_from_distributions(values, p_edge, p_cloud, mes=2), [1 - 0.9 * 0.2, 0.0])
    # win-hard: sum_i P(cloud = v_i) P(edge >= v_i).
    np.testing.assert_allclose(
        competence_from_distributions(values, p_edge, p_cloud, mes=2, rule="win-hard"), [0.1 * 1 + 0.6 * 0.8 + 0.3 * 0.5, 0.0]
    )
    with pytest.raises(ValueError, match="unknown label rule"):
        competence_from_distributions(values, p_edge, p_cloud, mes=2, rule="best")  # type: ignore[arg-type]


def test_a_pair_it_was_not_fitted_for(fitted):
    router, X, _, _ = fitted
    other = router.competence(X, edge="third", cloud="edge-model", mes=6.0)
    assert other.shape == (len(X),) and ((other >= 0) & (other <= 1)).all()
    assert np.abs(other - router.predict_proba(X)).max() > 0.05
    values = router.score_values
    p_edge, p_cloud = router.score_distribution(X, "third"), router.score_distribution(X, "edge-model")
    np.testing.assert_allclose(other, 1 - _at_least(values, p_cloud, 6.0) * (1 - _at_least(values, p_edge, 6.0)), atol=1e-12)


def test_it_learns_the_models_that_depend_on_features(fitted):
    router, X, targets, labels = fitted
    assert 0.2 < labels.mean() < 0.8
    assert roc_auc_score(labels, router.predict_proba(X)) > 0.8  # held-out queries of another seed
    # The third model's score depends on text[:, 1]; its P(score >= 6) ranks its held-out answers.
    known = np.isfinite(targets.scores[:, 2])
    reached = targets.scores[known, 2] >= 6
    p_third = _at_least(router.score_values, router.score_distribution(X, "third"), 6.0)[known]
    assert roc_auc_score(reached, p_third) > 0.8


def test_save_and_load_round_trip(fitted, tmp_path):
    router, X, _, _ = fitted
    router.save(tmp_path / "multi")
    loaded = load_router(tmp_path / "multi")
    assert isinstance(loaded, ECVLMultiRouter) and loaded.get_params() == router.get_params()
    assert loaded.models == MODELS
    np.testing.assert_array_equal(loaded.score_values, router.score_values)
    np.testing.assert_array_equal(loaded.predict_proba(X), router.predict_proba(X))
    for model in MODELS:
        np.testing.assert_array_equal(loaded.score_distribution(X, model), router.score_distribution(X, model))
    np.testing.assert_array_equal(
        loaded.competence(X, edge="third", cloud="cloud-model", mes=7, rule="win-soft", k=1),
        router.competence(X, edge="third", cloud="cloud-model", mes=7, rule="win-soft", k=1),
    )


def test_fitting_is_reproducible_with_the_seed():
    features, targets, _ = _targets(64, seed=3)
    a = ECVLMultiRouter(random_state=5, **{**PARAMS, "epochs": 2}).fit(features, targets)
    b = ECVLMultiRouter(random_state=5, **{**PARAMS, "epochs": 2}).fit(features, targets)
    np.testing.assert_array_equal(a.predict_proba(features), b.predict_proba(features))


def test_errors(fitted):
    router, X, _, labels = fitted
    with pytest.raises(KeyError, match="nope"):
        router.score_distribution(X, "nope")
    with pytest.raises(KeyError, match="ghost"):
        router.competence(X, edge="ghost", cloud="cloud-model", mes=6.0)
    with pytest.raises(TypeError, match="ScoreTargets"):
        create_router("ecvl-multi", epochs=1).fit(X, labels)
    with pytest.raises(KeyError, match="missing"):
        ScoreTargets(np.zeros((3, 2)), ("a", "b"), "a", "missing", 6.0)
    with pytest.raises(ValueError, match="shape"):
        ScoreTargets(np.zeros((3, 3)), ("a", "b"), "a", "b", 6.0)
    with pytest.raises(ValueError, match="single value"):
        ECVLMultiRouter(epochs=1).fit(X, ScoreTargets(np.full((len(X), 2), 7.0), ("a", "b"), "a", "b", 6.0))
    with pytest.raises(Exception, match="not fitted"):
        ECVLMultiRouter().predict_proba(X)


# --- the calibrated ensemble ----------------------------------------------------------------------


def test_isotonic_calibration_is_monotone_and_bounded():
    rng = np.random.default_rng(0)
    p = rng.random(400)
    labels = (rng.random(400) < p**2).astype(int)
    calibration = Calibration.fit("isotonic", p, labels)
    assert calibration.kind == "isotonic"
    grid = np.linspace(-0.5, 1.5, 401)  # also outside the fitted range
    mapped = calibration(grid)
    assert (np.diff(mapped) >= 0).all() and (mapped >= 0).all() and (mapped <= 1).all()
    # Its in-sample mean equals the label mean (isotonic regression preserves the mean).
    assert calibration(p).mean() == pytest.approx(labels.mean(), abs=1e-9)


def test_platt_calibration_corrects_systematically_high_predictions():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.05, 0.6, size=2000)
    labels = (rng.random(2000) < truth).astype(int)
    too_high = np.clip(truth + 0.3, 0, 1)
    calibration = Calibration.fit("platt", too_high, labels)
    assert calibration.kind == "platt" and calibration.x[0] > 0  # still increasing in p
    calibrated = calibration(too_high)
    assert abs(calibrated.mean() - labels.mean()) < 0.25 * abs(too_high.mean() - labels.mean())
    assert (np.diff(calibration(np.linspace(0, 1, 50))) > 0).all()


def test_calibration_of_one_class_or_none_is_the_identity():
    p = np.array([0.1, 0.5, 0.9])
    assert Calibration.fit("isotonic", p, np.array([1, 1, 1])) == Calibration()
    assert Calibration.fit("none", p, np.array([0, 1, 1])) == Calibration()
    np.testing.assert_array_equal(Calibration()(p), p)
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration.fit("beta", p, np.array([0, 1, 1]))  # type: ignore[arg-type]


def test_ensemble_averages_its_members_and_survives_save_and_load(fitted, tmp_path):
    router, X, targets, labels = fitted
    gbdt = create_router("gbdt", max_iter=20).fit(X, labels)
    members = [router, gbdt]
    mean = (router.predict_proba(X) + gbdt.predict_proba(X)) / 2
    plain = EnsembleRouter.of(members, Calibration())
    np.testing.assert_allclose(plain.predict_proba(X), mean, atol=1e-12)
    calibration = Calibration.fit("isotonic", mean, labels)
    ensemble = EnsembleRouter.of(members, calibration)
    np.testing.assert_allclose(ensemble.raw_proba(X), mean, atol=1e-12)
    np.testing.assert_allclose(ensemble.predict_proba(X), np.clip(calibration(mean), 0, 1), atol=1e-12)
    ensemble.save(tmp_path / "ensemble")
    loaded = load_router(tmp_path / "ensemble")
    assert isinstance(loaded, EnsembleRouter) and len(loaded.members) == 2
    assert [m.name for m in loaded.members] == ["ecvl-multi", "gbdt"]
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleRouter.of([], Calibration())
    with pytest.raises(TypeError):
        EnsembleRouter().fit(X, labels)


def _trained_multi(tmp_path, recipe: str):
    """An ecvl-multi TrainedRouter for the three preset scenarios (split or oof recipe), saved and reloaded."""
    from ecvl_router.learning.bundle import load_bundle, save_bundle
    from ecvl_router.learning.oof import train_out_of_fold
    from ecvl_router.scenarios import SCENARIOS
    from ecvl_router.learning.training import train_router

    features, targets, labels = _targets(300, seed=3)
    _, _, pair = synthetic_problem(300, seed=3)
    pair = type(pair)(**{**vars(pair), "score_edge": targets.scores[:, 0], "score_cloud": targets.scores[:, 1]})
    scenarios = list(SCENARIOS.values())
    if recipe == "split":
        fit, val = np.arange(200), np.arange(200, 300)
        trained = train_router(ECVLMultiRouter(random_state=0, **PARAMS), features.take(fit),
                               ScoreTargets(targets.scores[fit], MODELS, "edge-model", "cloud-model", 6.0),
                               features.take(val), pair.take(val), scenarios)
    else:
        trained = train_out_of_fold(lambda seed: ECVLMultiRouter(random_state=seed, **PARAMS),
                                    TrainingSet(features, targets, labels, pair, labels.astype(str)), scenarios, folds=3, fallback_z=None)
    save_bundle(trained, tmp_path / recipe)
    return load_bundle(tmp_path / recipe), features


@pytest.mark.parametrize("recipe", ["split", "oof"])
def test_a_bundle_serves_any_mes_and_any_pair_of_its_models(tmp_path, recipe):
    trained, X = _trained_multi(tmp_path, recipe)
    choice = trained.choice("quality")
    assert choice.tau_by_mes is not None and sorted(choice.tau_by_mes) == [float(v) for v in range(2, 11)]
    # The trained MES and pair: exactly the default decision.
    default = trained.decide(X, "quality")
    same = trained.decide(X, "quality", mes=6.0, edge="edge-model", cloud="cloud-model")
    np.testing.assert_array_equal(default[1], same[1])
    # Another MES: Eq. 2 on the router's predicted distributions, with the tau searched for that level.
    router = trained.router_at(choice.epoch)
    to_edge, p, tau = trained.decide(X, "quality", mes=8.0)
    np.testing.assert_allclose(p, router.competence(X, edge="edge-model", cloud="cloud-model", mes=8.0))
    assert tau == choice.tau_by_mes[8.0] and (to_edge == (p >= tau)).all()
    # An MES between levels uses the next level's tau; a pair never trained as a pair works too.
    assert trained.decide(X, "quality", mes=7.5)[2] == choice.tau_by_mes[8.0]
    _, p_other, _ = trained.decide(X, "quality", edge="third", cloud="edge-model")
    np.testing.assert_allclose(p_other, router.competence(X, edge="third", cloud="edge-model", mes=6.0))


def test_a_pair_router_refuses_another_mes(tmp_path):
    from ecvl_router.scenarios import SCENARIOS
    from ecvl_router.learning.training import train_router

    features, labels, pair = synthetic_problem(120, seed=2)
    trained = train_router(create_router("gbdt", max_iter=5), features.take(np.arange(80)), labels[:80],
                           features.take(np.arange(80, 120)), pair.take(np.arange(80, 120)), [SCENARIOS["quality"]])
    with pytest.raises(ValueError, match="ecvl-multi serves any"):
        trained.decide(features, "quality", mes=8.0)
