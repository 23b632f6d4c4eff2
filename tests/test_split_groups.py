"""Every split keeps each group on one side: the 6:2:2 and held-out-source splits, cross-validation folds, inner
folds, validation parts and the guarantee check's calibration/test parts; without groups, splits are as before."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.data.splits import holdout_split, shuffled_split, stratified_split, strata_of
from ecvl_router.learning import guarantee_check
from ecvl_router.learning.crossval import fold_strata, inner_folds, repeated_stratified_folds, validation_split
from ecvl_router.learning.guarantee_check import check_guarantee, out_of_fold_probabilities
from ecvl_router.learning.routing_task import build_task
from ecvl_router.learning.training_set import TrainingSet, concat_training_sets
from ecvl_router.learning.router_cv import CVInputs, CVSettings, PolicySpec, cross_validate
from ecvl_router.routers import create_router
from ecvl_router.routers.linear import LinearRouter
from ecvl_router.scenarios import SCENARIOS

from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

SEEDS = range(6)
CLOUD, EDGE = DEMO_PAIRS[0]


def grouped_data(seed: int, n_groups: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, labels, groups): groups of 1 to 8 rows, one source per group, labels drawn per row."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=n_groups)
    index = np.repeat(np.arange(n_groups), sizes)
    groups = np.array([f"g{i:03d}" for i in index], dtype=object)
    sources = rng.choice(["chart", "ocr", "count"], size=n_groups)[index]
    labels = (rng.random(len(index)) < 0.4).astype(int)
    return sources, labels, groups


def assert_groups_apart(groups: np.ndarray, *parts: np.ndarray) -> None:
    """No group has rows in two of ``parts``."""
    seen: dict[str, int] = {}
    for number, part in enumerate(parts):
        for group in set(groups[part]):
            assert seen.setdefault(group, number) == number, f"group {group} in parts {seen[group]} and {number}"


# --- the 6:2:2 and held-out-source splits --------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_split_keeps_groups_whole_and_sizes_close_to_6_2_2(seed):
    sources, labels, groups = grouped_data(seed)
    n = len(groups)
    split = stratified_split(strata_of(sources, labels), seed=seed, groups=groups)
    parts = (split.train, split.val, split.test)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert_groups_apart(groups, *parts)
    for part, ratio in zip(parts, (0.6, 0.2, 0.2)):
        assert abs(len(part) - ratio * n) <= 0.03 * n, (split.sizes(), n)
        assert abs(labels[part].mean() - labels.mean()) < 0.06  # still stratified


def test_grouped_split_is_seeded():
    sources, labels, groups = grouped_data(0)
    strata = strata_of(sources, labels)
    a, b, c = (stratified_split(strata, seed=s, groups=groups) for s in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test)))
    assert not np.array_equal(a.test, c.test)


def test_grouped_split_of_other_ratios_and_too_few_groups():
    sources, labels, groups = grouped_data(1)
    split = stratified_split(strata_of(sources, labels), seed=0, ratios=(0.75, 0.25, 0), groups=groups)
    assert len(split.test) == 0 and abs(len(split.val) - 0.25 * len(groups)) <= 0.03 * len(groups)
    assert_groups_apart(groups, split.train, split.val)
    with pytest.raises(ValueError, match="4 groups are too few for 5 parts"):
        stratified_split(strata_of(sources[:40], labels[:40]), groups=np.array(["a", "b", "c", "d"] * 10, dtype=object))


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_holdout_split(seed):
    sources, labels, groups = grouped_data(seed)
    split = holdout_split(sources, labels, ["ocr"], seed=seed, groups=groups)
    assert set(sources[split.test]) == {"ocr"} and "ocr" not in set(sources[split.train]) | set(sources[split.val])
    assert_groups_apart(groups, split.train, split.val, split.test)
    assert len(split.train) + len(split.val) + len(split.test) == len(groups)


def test_holdout_refuses_a_group_that_spans_held_out_and_kept_sources():
    sources, labels, groups = grouped_data(0)
    groups = groups.copy()
    groups[np.flatnonzero(sources == "ocr")[0]] = groups[np.flatnonzero(sources == "chart")[0]]
    with pytest.raises(ValueError, match="1 group\\(s\\) span held-out and kept sources"):
        holdout_split(sources, labels, ["ocr"], groups=groups)


def test_without_groups_the_splits_are_those_of_before():
    """Pinned: the indices these calls gave before groups existed (same data, same seed)."""
    rng = np.random.default_rng(11)
    sources = rng.choice(["chart", "ocr", "count"], size=30)
    labels = (rng.random(30) < 0.5).astype(int)
    split = stratified_split(strata_of(sources, labels), seed=4)
    assert [part.tolist() for part in (split.train, split.val, split.test)] == [
        [0, 2, 3, 4, 5, 6, 7, 10, 11, 15, 19, 20, 22, 24, 25, 26, 27, 29], [1, 8, 9, 16, 21, 28], [12, 13, 14, 17, 18, 23]]
    held = holdout_split(sources, labels, ["ocr"], seed=4)
    assert [part.tolist() for part in (held.train, held.val, held.test)] == [
        [0, 1, 2, 6, 7, 11, 15, 16, 18, 20, 22, 26, 27, 29], [9, 13, 17, 28], [3, 4, 5, 8, 10, 12, 14, 19, 21, 23, 24, 25]]
    order = np.random.default_rng(5).permutation(30)
    first, rest = shuffled_split(np.random.default_rng(5), 30, 0.4)
    assert first.tolist() == order[:12].tolist() and rest.tolist() == order[12:].tolist()


# --- folds, inner folds, validation parts, calibration/test parts --------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_cross_validation_folds_keep_each_group_in_one_test_fold(seed):
    sources, labels, groups = grouped_data(seed)
    folds = repeated_stratified_folds(fold_strata(sources, labels, 5), n_folds=5, n_repeats=2, seed=seed, groups=groups)
    for repeat in (0, 1):
        tests = [fold.test for fold in folds if fold.repeat == repeat]
        assert sorted(np.concatenate(tests).tolist()) == list(range(len(groups)))
        assert_groups_apart(groups, *tests)
    for fold in folds:
        assert_groups_apart(groups, fold.train, fold.test)


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_inner_folds_and_validation_parts(seed):
    sources, labels, groups = grouped_data(seed)
    strata = fold_strata(sources, labels, 5)
    for fit, held in inner_folds(strata, 5, seed, groups):
        assert_groups_apart(groups, fit, held)
    fit, val = validation_split(strata, seed, 0.25, groups)
    assert_groups_apart(groups, fit, val)
    assert abs(len(val) - 0.25 * len(groups)) <= 0.05 * len(groups)


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_calibration_and_test_parts(seed):
    _, _, groups = grouped_data(seed)
    first, rest = shuffled_split(np.random.default_rng(seed), len(groups), 0.5, groups)
    assert sorted(np.concatenate([first, rest]).tolist()) == list(range(len(groups)))
    assert_groups_apart(groups, first, rest)
    assert abs(len(first) - 0.5 * len(groups)) <= 8  # the largest group
    other, _ = shuffled_split(np.random.default_rng(seed + 100), len(groups), 0.5, groups)
    assert set(first.tolist()) != set(other.tolist())


def _grouped_problem(n: int, seed: int, size: int = 4):
    """The synthetic routing problem with groups of ``size`` consecutive queries."""
    features, labels, pair = synthetic_problem(n, seed=seed)
    groups = np.array([f"g{i // size}" for i in range(n)], dtype=object)
    return features, labels, dataclasses.replace(pair, groups=groups)


@pytest.fixture
def leaks(monkeypatch):
    """Every prediction of a linear router records the groups it was fitted on and the groups it predicts."""
    seen: list[tuple[set[str], set[str]]] = []
    fit, predict = LinearRouter.iter_fit, LinearRouter.predict_proba
    group_of: dict[str, str] = {}

    def recording_fit(self, X, y):
        self.fitted_groups = {group_of[i] for i in X.item_ids}
        return fit(self, X, y)

    def recording_predict(self, X):
        seen.append((self.fitted_groups, {group_of[i] for i in X.item_ids}))
        return predict(self, X)

    monkeypatch.setattr(LinearRouter, "iter_fit", recording_fit)
    monkeypatch.setattr(LinearRouter, "predict_proba", recording_predict)
    return seen, group_of


def test_no_recipe_in_cross_validation_predicts_a_group_it_trained_on(leaks):
    seen, group_of = leaks
    features, labels, pair = _grouped_problem(160, seed=4)
    group_of.update(zip(pair.item_ids, pair.groups))
    strata = fold_strata(pair.sources, labels, 2)
    inputs = CVInputs(pair=pair, labels=labels, features=features, strata=strata, groups=pair.groups)
    folds = repeated_stratified_folds(strata, n_folds=2, n_repeats=1, seed=0, groups=pair.groups)
    settings = CVSettings(router_params={"linear": SMALL_PARAMS["linear"]}, inner_folds=3, members=2)
    policies = [PolicySpec.parse(text) for text in ("linear", "linear:oof", "linear:bag")]
    rows = cross_validate(inputs, policies, [SCENARIOS["quality"]], folds, settings)
    assert set(rows["policy"]) >= {"linear", "linear:oof", "linear:bag"}
    assert len(seen) > 10 and all(fitted and not fitted & predicted for fitted, predicted in seen)


def test_without_groups_cross_validation_does_predict_groups_it_trained_on(leaks):
    """The check above can fail: ungrouped folds mix the same groups into training and test parts."""
    seen, group_of = leaks
    features, labels, pair = _grouped_problem(160, seed=4)
    group_of.update(zip(pair.item_ids, pair.groups))
    strata = fold_strata(pair.sources, labels, 2)
    inputs = CVInputs(pair=dataclasses.replace(pair, groups=None), labels=labels, features=features, strata=strata)
    folds = repeated_stratified_folds(strata, n_folds=2, n_repeats=1, seed=0)
    cross_validate(inputs, [PolicySpec.parse("linear")], [SCENARIOS["quality"]], folds,
                   CVSettings(router_params={"linear": SMALL_PARAMS["linear"]}))
    assert any(fitted & predicted for fitted, predicted in seen)


def test_guarantee_check_fits_and_calibrates_on_other_groups_than_it_tests(leaks, monkeypatch):
    seen, group_of = leaks
    features, labels, pair = _grouped_problem(200, seed=6)
    group_of.update(zip(pair.item_ids, pair.groups))
    p = out_of_fold_probabilities(lambda s: create_router("linear", random_state=s, **SMALL_PARAMS["linear"]), features,
                                  labels, labels, pair.sources, folds=3, groups=pair.groups)
    assert len(seen) == 3 and all(not fitted & predicted for fitted, predicted in seen)
    splits: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(*args):
        splits.append(shuffled_split(*args))
        return splits[-1]

    monkeypatch.setattr(guarantee_check, "shuffled_split", recording)
    rows = check_guarantee(p, pair, mes=6, max_drops=[0.1], confidences=[0.9], reference=SCENARIOS["quality"], repetitions=10)
    assert len(rows) == 4 * 10 and len(splits) == 10
    for calibration, test in splits:
        assert_groups_apart(pair.groups, calibration, test)


def test_routing_task_splits_by_group_and_records_it(tmp_path):
    root = tmp_path / "demo"
    generate_demo(root, n_items=120, seed=1)
    plain = build_task(load_rsd(root), EDGE, CLOUD, mes=6, seed=2)
    assert "split_groups" not in plain.describe() and plain.pair.groups is None
    items = [json.loads(line) for line in (root / "items.jsonl").read_text().splitlines()]
    (root / "items.jsonl").write_text("".join(json.dumps({**item, "group": f"g{i // 6}"}) + "\n" for i, item in enumerate(items)))
    task = build_task(load_rsd(root), EDGE, CLOUD, mes=6, seed=2)
    assert task.describe()["split_groups"] == 20 and task.labels.tolist() == plain.labels.tolist()
    assert_groups_apart(task.pair.groups, task.split.train, task.split.val, task.split.test)
    assert sum(task.split.sizes()) == len(task.pair) == 120


def test_joining_a_grouped_with_an_ungrouped_training_set_keeps_every_query_in_a_group():
    features, labels, pair = _grouped_problem(8, seed=1)
    grouped = TrainingSet(features, labels, labels, pair, np.array(["s"] * 8, dtype=object))
    other_features, other_labels, other_pair = synthetic_problem(3, seed=2)
    plain = TrainingSet(other_features, other_labels, other_labels, other_pair, np.array(["s"] * 3, dtype=object))
    joined = concat_training_sets(grouped, plain)
    assert joined.pair.groups.tolist() == ["g0"] * 4 + ["g1"] * 4 + other_pair.item_ids.tolist()
    assert concat_training_sets(plain, plain).pair.groups is None
