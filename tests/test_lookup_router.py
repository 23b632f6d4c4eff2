"""The `lookup` baseline: the mean edge-minus-cloud score per (source, last sentence) cell, with back-off."""

from __future__ import annotations

import numpy as np
import pytest

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers import LookupRouter, ScoreTargets, create_router, load_router
from ecvl_router.routers.lookup import last_sentence

MODELS = ("edge", "cloud", "third")


def _features(questions: list[str], sources: list[str] | None) -> QueryFeatures:
    n = len(questions)
    return QueryFeatures(item_ids=np.array([f"q{i}" for i in range(n)]), text=np.zeros((n, 3), np.float32),
                         image=np.zeros((n, 2), np.float32), stats=np.zeros((n, 1), np.float32), has_image=np.zeros(n, bool),
                         questions=np.array(questions, dtype=object), sources=None if sources is None else np.array(sources, dtype=object))


def _targets(edge: list[float], cloud: list[float]) -> ScoreTargets:
    scores = np.column_stack([edge, cloud, np.zeros(len(edge))]).astype(np.float64)
    return ScoreTargets(scores, MODELS, "edge", "cloud", 1.0)


@pytest.fixture()
def fitted() -> LookupRouter:
    questions = ["What is x? Answer with an integer.", "Find y.  Answer  with an integer.", "What is z? Answer with a float.",
                 "Area? Answer with a float.", "Count the dots. Answer with an integer."]
    sources = ["algebra", "algebra", "algebra", "algebra", "counting"]
    return LookupRouter().fit(_features(questions, sources), _targets([1, 1, 0, 0, 1], [0, 1, 1, 1, 1]))


def test_last_sentence_is_normalised():
    assert last_sentence("What is x?\n Answer  with AN integer. ") == "answer with an integer."
    assert last_sentence("no punctuation at all") == "no punctuation at all"
    assert last_sentence("") == ""


def test_a_seen_cell_gets_its_mean_gap_and_unseen_ones_back_off_to_the_source_then_the_global_mean(fitted):
    X = _features(["Why? Answer with an integer.", "How? Answer with a float.", "Which? Answer in words.",
                   "Which? Answer in words.", "Which? Answer with an integer."], ["algebra", "algebra", "algebra", "geometry", None])
    np.testing.assert_allclose(fitted.mean_gap(X), [0.5, -1.0, -0.25, -0.2, 1 / 3])
    np.testing.assert_allclose(fitted.predict_proba(X), 0.5 + fitted.mean_gap(X) / 2)
    np.testing.assert_allclose(fitted.competence_rate(X)[:2], [1.0, 0.0])
    assert np.isnan(fitted.competence_rate(X)[2])


def test_a_query_of_unknown_source_gets_its_last_sentences_mean_over_every_source(fitted):
    X = _features(["C. Answer with an integer.", "D. Answer with a float.", "E. Say maybe."], None)
    np.testing.assert_allclose(fitted.mean_gap(X), [1 / 3, -1.0, -0.2])
    router = LookupRouter().fit(_features(["A. Say yes.", "B. Say no."], None), _targets([1, 0], [0, 1]))
    np.testing.assert_allclose(router.predict_proba(_features(["C. Say yes.", "D. Say maybe."], None)), [1.0, 0.5])


def test_it_serves_its_fitted_pair_only_and_round_trips(fitted, tmp_path):
    X = _features(["Why? Answer with an integer."], ["algebra"])
    assert fitted.fitted_pair == {"edge": "edge", "cloud": "cloud", "mes": 1.0, "rule": "mes", "k": 1.0}
    np.testing.assert_array_equal(fitted.competence(X, edge="edge", cloud="cloud", mes=1.0), fitted.predict_proba(X))
    with pytest.raises(ValueError, match="train it for third / cloud"):
        fitted.competence(X, edge="third", cloud="cloud", mes=1.0)
    assert fitted.competence_by_level(X, edge="edge", cloud="cloud") == {}
    fitted.save(tmp_path / "lookup")
    loaded = load_router(tmp_path / "lookup")
    assert isinstance(loaded, LookupRouter)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_errors():
    X = _features(["A."], ["s"])
    with pytest.raises(TypeError, match="ScoreTargets"):
        create_router("lookup").fit(X, np.array([1]))
    with pytest.raises(Exception, match="not fitted"):
        LookupRouter().predict_proba(X)
    with pytest.raises(ValueError, match="no training query has scores of both"):
        LookupRouter().fit(_features(["A.", "B."], ["s", "s"]), _targets([np.nan, 1], [0, np.nan]))


def test_the_oof_recipe_trains_it_through_the_registry():
    from ecvl_router.learning.recipes import train_with_recipe
    from ecvl_router.learning.training_set import TrainingSet
    from ecvl_router.scenarios import SCENARIOS
    from tests.routing_synthetic import synthetic_problem

    features, _, pair = synthetic_problem(200, seed=0)
    rng = np.random.default_rng(0)
    endings = rng.choice(["Answer with an integer.", "Answer with a float.", "Choose an option."], len(pair))
    edge = (rng.random(len(pair)) < np.where(endings == "Choose an option.", 0.9, 0.2)).astype(float)
    cloud = (rng.random(len(pair)) < 0.6).astype(float)
    pair = type(pair)(**{**vars(pair), "score_edge": edge, "score_cloud": cloud})
    labels = ((edge >= 1) | (cloud < 1)).astype(int)
    X = QueryFeatures(**{**vars(features), "questions": np.array([f"Q{i}? {e}" for i, e in enumerate(endings)], dtype=object)})
    targets = ScoreTargets(np.column_stack([edge, cloud, rng.random(len(pair))]), MODELS, "edge", "cloud", 1.0)
    data = TrainingSet(X, targets, labels, pair, labels.astype(str))
    trained = train_with_recipe("oof", lambda seed: create_router("lookup", random_state=seed), data, [SCENARIOS["quality"]])
    p = trained.predict_proba(X, "quality")
    assert p[endings == "Choose an option."].mean() > p[endings != "Choose an option."].mean() + 0.2
