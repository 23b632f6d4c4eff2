"""The routers' inner cross-validation: grouped folds, ridge tuned on them, and linear and profile using them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers import LinearRouter, ProfileRouter, ScoreTargets
from ecvl_router.routers.inner_cv import CrossValidatedRidge, inner_splits


def _grouped_noise(n_groups: int = 60, size: int = 8, seed: int = 0):
    """Queries in groups of near-copies whose outcome is a coin flip per group: nothing generalises to a new group."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 40))
    rows = np.repeat(centres, size, axis=0) + 0.05 * rng.normal(size=(n_groups * size, 40))
    groups = np.repeat([f"g{index}" for index in range(n_groups)], size)
    outcome = np.repeat(rng.integers(0, 2, n_groups), size).astype(np.float64)
    return rows.astype(np.float32), groups, outcome


def _features(rows: np.ndarray, groups: np.ndarray | None) -> QueryFeatures:
    n = len(rows)
    return QueryFeatures(item_ids=np.array([f"q{i}" for i in range(n)]), text=rows, image=np.zeros((n, 2), np.float32),
                         stats=np.zeros((n, 1), np.float32), has_image=np.zeros(n, bool), groups=groups)


@pytest.mark.parametrize("labels", [None, np.tile([0, 1, 1], 40)])
def test_grouped_splits_keep_every_group_on_one_side_and_cover_every_row_once(labels):
    groups = np.repeat(np.arange(24), 5).astype(str)
    splits = inner_splits(120, 5, seed=3, labels=labels, groups=groups)
    assert len(splits) == 5
    held = np.concatenate([test for _, test in splits])
    assert sorted(held) == list(range(120))
    for fit, test in splits:
        assert not set(groups[fit]) & set(groups[test])


def test_without_groups_the_splits_are_plain_k_fold_and_fewer_groups_mean_fewer_folds():
    plain = inner_splits(50, 5, seed=0)
    assert len(plain) == 5 and sorted(np.concatenate([test for _, test in plain])) == list(range(50))
    assert len(inner_splits(30, 5, seed=0, groups=np.repeat(["a", "b", "c"], 10))) == 3


@pytest.mark.parametrize(("n", "d"), [(200, 12), (60, 150)])  # more rows than columns, and fewer (the dual form)
def test_the_ridge_matches_scikit_learn_at_each_chosen_penalty_and_keeps_held_out_predictions(n, d):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d)
    Y = np.column_stack([X[:, 0] + 0.1 * rng.normal(size=n), rng.normal(size=n)])
    splits = inner_splits(n, 4, seed=0)
    ridge = CrossValidatedRidge(np.geomspace(0.01, 1e4, 13)).fit(X, Y, splits)
    assert ridge.chosen[0] < ridge.chosen[1]  # signal: a weak penalty; noise: the strongest
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    for target in range(2):
        reference = Ridge(alpha=ridge.chosen[target]).fit(Z, Y[:, target])
        np.testing.assert_allclose(ridge.predict(X)[:, target], reference.predict(Z), atol=1e-4)
        fit, held = splits[0]
        fold = Ridge(alpha=ridge.chosen[target]).fit(Z[fit], Y[fit, target])
        np.testing.assert_allclose(ridge.oof[held, target], fold.predict(Z[held]), atol=1e-4)


def test_grouped_folds_choose_the_stronger_penalty_where_only_memorising_a_group_pays():
    rows, groups, outcome = _grouped_noise()
    alphas = np.geomspace(0.1, 1e5, 13)
    leaky = CrossValidatedRidge(alphas).fit(rows, outcome, inner_splits(len(rows), 5, 0))
    grouped = CrossValidatedRidge(alphas).fit(rows, outcome, inner_splits(len(rows), 5, 0, groups=groups))
    assert grouped.chosen[0] >= 100 * leaky.chosen[0]


def test_linear_cross_validates_its_penalty_on_folds_that_keep_groups_whole():
    rows, groups, outcome = _grouped_noise(seed=2)
    router = LinearRouter(penalties=5, inner_folds=4).fit(_features(rows, groups), outcome.astype(int))
    splits = router._model[-1].cv
    assert len(splits) == 4
    for fit, held in splits:
        assert not set(groups[fit]) & set(groups[held])
    ungrouped = LinearRouter(penalties=5, inner_folds=4).fit(_features(rows, None), outcome.astype(int))
    assert any(set(groups[fit]) & set(groups[held]) for fit, held in ungrouped._model[-1].cv)
    assert router._model[-1].C_ <= ungrouped._model[-1].C_


def test_profile_chooses_its_penalties_on_grouped_folds_when_the_features_carry_groups():
    rows, groups, outcome = _grouped_noise(seed=4)
    rng = np.random.default_rng(5)
    scores = np.column_stack([outcome, 1.0 - outcome * rng.integers(0, 2, len(outcome)), rng.integers(0, 2, len(outcome))])
    targets = ScoreTargets(scores.astype(np.float64), ("edge", "cloud", "third"), "edge", "cloud", 1.0)
    params = {"ridges": 9, "inner_folds": 4}
    grouped = ProfileRouter(**params).fit(_features(rows, groups), targets)
    leaky = ProfileRouter(**params).fit(_features(rows, None), targets)
    assert grouped._model.scores["text"].chosen[0] >= 100 * leaky._model.scores["text"].chosen[0]
