"""The two-stage `profile` router: every model's predicted score, then the pair's competence on that profile."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecvl_router.labels import competence_labels
from ecvl_router.routers import ProfileRouter, ScoreTargets, create_router, load_router
from tests.test_multi_router import MODELS, _targets, fitted_and_held_out

PARAMS = {"penalties": 5, "inner_folds": 3, "ridges": 7}


@pytest.fixture(scope="module")
def fitted():
    return fitted_and_held_out(ProfileRouter(random_state=0, **PARAMS))


def test_it_learns_the_pairs_competence_from_held_out_queries(fitted):
    router, X, _, labels = fitted
    p = router.predict_proba(X)
    assert p.dtype == np.float64 and p.shape == (len(X),) and ((0 <= p) & (p <= 1)).all()
    assert 0.2 < labels.mean() < 0.8
    assert roc_auc_score(labels, p) > 0.8  # held-out queries of another seed


@pytest.mark.parametrize(("mes", "level"), [(6.0, 6.0), (5.5, 6.0), (7.2, 8.0), (2.0, 2.0)])
def test_an_mes_between_levels_is_the_next_levels_competence(fitted, mes, level):
    router, X, _, _ = fitted
    at_level = router.competence(X, edge="edge-model", cloud="cloud-model", mes=level)
    np.testing.assert_array_equal(router.competence(X, edge="edge-model", cloud="cloud-model", mes=mes), at_level)
    np.testing.assert_array_equal(router.competence_by_level(X, edge="edge-model", cloud="cloud-model")[level], at_level)


@pytest.mark.parametrize("mes", [10.5, 1.0, 0.5])  # above every score, or at and below the lowest (1)
def test_an_mes_outside_the_scores_makes_the_edge_always_competent(fitted, mes):
    router, X, targets, _ = fitted
    assert competence_labels(targets.scores[:, 0], targets.scores[:, 1], mes=mes).all()
    np.testing.assert_array_equal(router.competence(X, edge="edge-model", cloud="cloud-model", mes=mes), np.ones(len(X)))


def test_each_mes_has_its_own_head_fitted_to_that_mes_labels(fitted):
    router, X, targets, _ = fitted
    rates = {}
    for mes in (3.0, 6.0):
        p = router.competence(X, edge="edge-model", cloud="cloud-model", mes=mes)
        rates[mes] = competence_labels(targets.scores[:, 0], targets.scores[:, 1], mes=mes).mean()
        assert abs(p.mean() - rates[mes]) < 0.1  # held-out queries: each head's level near its own labels (the recipes calibrate further)
    assert rates[3.0] - rates[6.0] > 0.2


def test_another_pair_or_rule_is_refused_with_the_fitted_pair_named(fitted):
    router, X, _, _ = fitted
    with pytest.raises(ValueError, match="edge-model \\(edge\\) / cloud-model \\(cloud\\).*third / cloud-model"):
        router.competence(X, edge="third", cloud="cloud-model", mes=6.0)
    with pytest.raises(ValueError, match="under win-hard"):
        router.competence(X, edge="edge-model", cloud="cloud-model", mes=6.0, rule="win-hard")


def test_a_win_rule_gets_one_head_and_no_levels():
    features, targets, _ = _targets(200, seed=4)
    win = ScoreTargets(targets.scores, MODELS, "edge-model", "cloud-model", 6.0, rule="win-soft", k=1.0)
    router = ProfileRouter(**PARAMS).fit(features, win)
    assert router.competence_by_level(features, edge="edge-model", cloud="cloud-model") == {}
    np.testing.assert_array_equal(router.predict_proba(features),
                                  router.competence(features, edge="edge-model", cloud="cloud-model", mes=6.0, rule="win-soft", k=1.0))


def test_save_and_load_round_trip(fitted, tmp_path):
    router, X, _, _ = fitted
    router.save(tmp_path / "profile")
    loaded = load_router(tmp_path / "profile")
    assert isinstance(loaded, ProfileRouter) and loaded.get_params() == router.get_params()
    assert loaded.fitted_pair == router.fitted_pair == {"edge": "edge-model", "cloud": "cloud-model", "mes": 6.0, "rule": "mes", "k": 1.0}
    np.testing.assert_array_equal(loaded.predict_proba(X), router.predict_proba(X))
    np.testing.assert_array_equal(loaded.competence(X, edge="edge-model", cloud="cloud-model", mes=8.0),
                                  router.competence(X, edge="edge-model", cloud="cloud-model", mes=8.0))


def test_fitting_is_reproducible_with_the_seed():
    features, targets, _ = _targets(120, seed=3)
    a = ProfileRouter(random_state=5, **PARAMS).fit(features, targets)
    b = ProfileRouter(random_state=5, **PARAMS).fit(features, targets)
    np.testing.assert_array_equal(a.predict_proba(features), b.predict_proba(features))


def test_errors(fitted):
    _, X, _, labels = fitted
    with pytest.raises(TypeError, match="ScoreTargets"):
        create_router("profile").fit(X, labels)
    with pytest.raises(ValueError, match="single value"):
        ProfileRouter().fit(X, ScoreTargets(np.full((len(X), 2), 7.0), ("a", "b"), "a", "b", 6.0))
    scores = np.column_stack([np.full(len(X), 7.0), np.arange(len(X)) % 10 + 1.0, np.full(len(X), np.nan)])
    with pytest.raises(ValueError, match="'c' has no score"):
        ProfileRouter().fit(X, ScoreTargets(scores, ("a", "b", "c"), "a", "b", 6.0))
    with pytest.raises(ValueError, match="ridge_min"):
        ProfileRouter(ridge_min=0.0)
    with pytest.raises(Exception, match="not fitted"):
        ProfileRouter().predict_proba(X)


def test_a_bundle_serves_another_mes_of_its_pair_and_refuses_another_pair(tmp_path):
    from ecvl_router.learning.bundle import load_bundle, save_bundle
    from ecvl_router.scenarios import SCENARIOS
    from ecvl_router.learning.training import train_router
    from tests.routing_synthetic import synthetic_problem

    features, targets, _ = _targets(300, seed=3)
    _, _, pair = synthetic_problem(300, seed=3)
    pair = type(pair)(**{**vars(pair), "score_edge": targets.scores[:, 0], "score_cloud": targets.scores[:, 1]})
    fit, val = np.arange(200), np.arange(200, 300)
    trained = train_router(ProfileRouter(random_state=0, **PARAMS), features.take(fit),
                           ScoreTargets(targets.scores[fit], MODELS, "edge-model", "cloud-model", 6.0),
                           features.take(val), pair.take(val), [SCENARIOS["quality"]])
    save_bundle(trained, tmp_path / "bundle")
    trained = load_bundle(tmp_path / "bundle")
    choice = trained.choice("quality")
    assert sorted(choice.tau_by_mes) == [float(v) for v in range(2, 11)]
    to_edge, p, tau = trained.decide(features, "quality", mes=8.0)
    router = trained.router_at(choice.epoch)
    np.testing.assert_array_equal(p, router.competence(features, edge="edge-model", cloud="cloud-model", mes=8.0))
    assert tau == choice.tau_by_mes[8.0] and (to_edge == (p >= tau)).all()
    with pytest.raises(ValueError, match="train it for that pair"):
        trained.decide(features, "quality", edge="third", cloud="edge-model")


def _ending_problem(n: int, seed: int):
    """Features without signal and questions whose last sentence alone decides which model is right."""
    features, _, _ = _targets(n, seed=seed)
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    questions = np.array([f"Question {i}? " + ("Answer with an integer.", "Answer with a float.", "Choose one.")[k]
                          for i, k in enumerate(kind)], dtype=object)
    edge = (rng.random(n) < np.array([0.9, 0.2, 0.5])[kind]).astype(float)
    cloud = (rng.random(n) < 0.6).astype(float)
    scores = np.column_stack([edge, cloud, rng.integers(0, 2, n)]).astype(float)
    X = type(features)(**{**vars(features), "questions": questions})
    return X, ScoreTargets(scores, MODELS, "edge-model", "cloud-model", 1.0), edge - cloud


def test_stage_two_reads_the_mean_gap_of_the_questions_last_sentence():
    X, targets, _ = _ending_problem(300, seed=0)
    X_new, _, gap_new = _ending_problem(200, seed=1)
    with_endings = ProfileRouter(endings=True, **PARAMS).fit(X, targets).predict_proba(X_new)
    without = ProfileRouter(lookup=False, **PARAMS).fit(X, targets).predict_proba(X_new)
    assert np.corrcoef(with_endings, gap_new)[0, 1] > 0.3
    assert abs(np.corrcoef(without, gap_new)[0, 1]) < 0.2


def _source_problem(n: int, seed: int):
    """Features without signal, one question ending for all, and sources that alone decide which model is right."""
    X, _, _ = _ending_problem(n, seed)
    rng = np.random.default_rng(seed + 100)
    kind = rng.integers(0, 3, n)
    edge = (rng.random(n) < np.array([0.9, 0.2, 0.5])[kind]).astype(float)
    cloud = (rng.random(n) < 0.6).astype(float)
    scores = np.column_stack([edge, cloud, rng.integers(0, 2, n)]).astype(float)
    X = type(X)(**{**vars(X), "questions": np.array(["Question? Answer."] * n, dtype=object),
                   "sources": np.array([f"source-{k}" for k in kind], dtype=object)})
    return X, ScoreTargets(scores, MODELS, "edge-model", "cloud-model", 1.0), edge - cloud


def test_the_gap_ranking_adds_the_mean_gap_of_the_querys_cell_and_a_live_query_its_last_sentences():
    X, targets, _ = _source_problem(300, seed=0)
    X_new, _, gap_new = _source_problem(200, seed=1)
    blended = ProfileRouter(**PARAMS).fit(X, targets)
    assert blended.lookup and np.corrcoef(blended.predict_proba(X_new), gap_new)[0, 1] > 0.3
    without = ProfileRouter(lookup=False, **PARAMS).fit(X, targets).predict_proba(X_new)
    assert abs(np.corrcoef(without, gap_new)[0, 1]) < 0.2
    live = blended.predict_proba(type(X_new)(**{**vars(X_new), "sources": None}))  # one last sentence for all: no signal
    assert np.ptp(live) < 0.5 * np.ptp(blended.predict_proba(X_new))
    with pytest.raises(ValueError, match="needs head='gap', not 'logistic'"):
        ProfileRouter(head="logistic", lookup=True)
    assert not ProfileRouter(head="logistic").lookup


def test_the_logistic_head_fits_the_labels_on_the_profile(fitted):
    _, X, _, labels = fitted
    features, targets, _ = _targets(320, seed=0)
    router = ProfileRouter(head="logistic", **PARAMS).fit(features, targets)
    assert roc_auc_score(labels, router.predict_proba(X)) > 0.8
    with pytest.raises(ValueError, match="unknown head 'tree'; heads are gap, logistic"):
        ProfileRouter(head="tree")
