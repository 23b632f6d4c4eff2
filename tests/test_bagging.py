"""Seed bagging of the split recipe: member 0 is the paper's router, τ comes from out-of-bag predictions only,
and the bag decides with the calibrated mean of its members at their best epochs."""

from __future__ import annotations

import numpy as np
import pytest

from ecvl_router.learning import bagging, training
from ecvl_router.learning.bagging import train_bagged
from ecvl_router.learning.training_set import TrainingSet
from ecvl_router.learning.crossval import fold_strata, repeated_stratified_folds, validation_split
from ecvl_router.learning.router_cv import CVInputs, CVSettings, PolicySpec, cross_validate, train_policy
from ecvl_router.routers import EnsembleRouter, create_router
from ecvl_router.routers.ensemble import Calibration
from ecvl_router.scenarios import SCENARIOS

from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

SCENARIO_LIST = [SCENARIOS["quality"], SCENARIOS["speed"]]


def mlp(seed: int):
    return create_router("mlp", random_state=seed, **{**SMALL_PARAMS["mlp"], "epochs": 4})


def _bag(n: int = 160, members: int = 3, calibration: str = "isotonic"):
    features, labels, pair = synthetic_problem(n, seed=3)
    strata = fold_strata(pair.sources, labels, 2)
    bag = train_bagged(mlp, TrainingSet(features, labels, labels, pair, strata), SCENARIO_LIST, members=members, seed=5,
                       calibration=calibration)  # type: ignore[arg-type]
    return bag, features, labels, pair, strata


def test_member_zero_is_the_split_recipe_router():
    bag, features, labels, pair, strata = _bag()
    fit, val = validation_split(strata, 5)
    alone = training.train_router(mlp(5), features.take(fit), labels[fit], features.take(val), pair.take(val), SCENARIO_LIST)
    assert np.array_equal(bag.validation[0], val)
    X_new, _, _ = synthetic_problem(50, seed=8)
    for scenario in SCENARIO_LIST:
        assert bag.members[0].choice(scenario.name).tau == alone.choice(scenario.name).tau
        np.testing.assert_allclose(bag.members[0].predict_proba(X_new, scenario.name), alone.predict_proba(X_new, scenario.name))


def test_members_differ_in_seed_and_validation_part():
    bag, *_ = _bag()
    assert len(bag.members) == 3
    assert not np.array_equal(bag.validation[0], bag.validation[1])
    assert bag.trained.recipe == {"name": "bag", "members": 3, "share": 0.25, "calibration": "isotonic"}
    assert bag.trained.label == "mlp:bag"


def test_out_of_bag_predictions_are_the_mean_of_the_members_that_held_the_query_out():
    bag, features, _, _, _ = _bag()
    for scenario in SCENARIO_LIST:
        expected_sum, count = np.zeros(len(features)), np.zeros(len(features))
        for member, val in zip(bag.members, bag.validation):
            expected_sum[val] += member.predict_proba(features.take(val), scenario.name)
            count[val] += 1
        p_oob = bag.out_of_bag[scenario.name]
        assert np.array_equal(np.isnan(p_oob), count == 0)
        np.testing.assert_allclose(p_oob[count > 0], expected_sum[count > 0] / count[count > 0])


def test_tau_is_searched_on_out_of_bag_queries_only(monkeypatch):
    seen: list[int] = []
    original = bagging.search_threshold

    def recording(p, pair, scenario, *args, **kwargs):
        seen.append(len(pair))
        return original(p, pair, scenario, *args, **kwargs)

    monkeypatch.setattr(bagging, "search_threshold", recording)
    bag, *_ = _bag()
    held = int((~np.isnan(bag.out_of_bag["quality"])).sum())
    assert seen == [held, held]
    assert held == len(np.unique(np.concatenate(bag.validation)))


def test_the_bag_decides_with_the_calibrated_mean_of_its_members_at_their_best_epochs():
    bag, features, labels, _, _ = _bag()
    X_new, _, _ = synthetic_problem(50, seed=8)
    for scenario in SCENARIO_LIST:
        mean = np.mean([member.predict_proba(X_new, scenario.name) for member in bag.members], axis=0)
        p_oob = bag.out_of_bag[scenario.name]
        held = ~np.isnan(p_oob)
        calibrator = Calibration.fit("isotonic", p_oob[held], labels[held])
        to_edge, p, tau = bag.trained.decide(X_new, scenario.name)
        assert isinstance(bag.trained.router_at(bag.trained.choice(scenario.name).epoch), EnsembleRouter)
        np.testing.assert_allclose(p, np.clip(calibrator(mean), 0, 1))
        assert tau == bag.trained.choice(scenario.name).tau
        assert np.array_equal(to_edge, p >= tau)


def test_bag_recipe_in_cross_validation_never_sees_the_test_fold(monkeypatch):
    features, labels, pair = synthetic_problem(120, seed=11)
    inputs = CVInputs(pair=pair, labels=labels, features=features, strata=fold_strata(pair.sources, labels, 2))
    settings = CVSettings(seed=0, router_params={"mlp": {**SMALL_PARAMS["mlp"], "epochs": 3}}, members=2)
    fold = repeated_stratified_folds(inputs.strata, n_folds=2, n_repeats=1, seed=0)[0]
    seen: list[set[str]] = []
    for module in (training, bagging):
        original = module.search_threshold

        def recording(p, pair_val, scenario, *args, _original=original, **kwargs):
            seen.append(set(pair_val.item_ids.tolist()))
            return _original(p, pair_val, scenario, *args, **kwargs)

        monkeypatch.setattr(module, "search_threshold", recording)
    rows = cross_validate(inputs, [PolicySpec.parse("mlp:bag")], SCENARIO_LIST, [fold], settings)
    test_ids = set(pair.item_ids[fold.test].tolist())
    assert seen and all(ids and not ids & test_ids for ids in seen)
    assert set(rows["policy"]) == {"all-large", "all-small", "oracle", "mlp:bag"}
    assert train_policy(PolicySpec("mlp", "bag"), inputs, fold.train, SCENARIO_LIST, settings).recipe["members"] == 2


def test_policy_spec_accepts_the_bag_recipe_and_a_bag_needs_members():
    assert PolicySpec.parse("ecvl:bag") == PolicySpec("ecvl", "bag")
    features, labels, pair = synthetic_problem(40, seed=1)
    with pytest.raises(ValueError, match="at least one member"):
        train_bagged(mlp, TrainingSet(features, labels, labels, pair, fold_strata(pair.sources, labels, 2)), SCENARIO_LIST, members=0)
