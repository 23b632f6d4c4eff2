"""Routers: the contract, learning on an easy problem, determinism, persistence, branches, bad input."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers import (
    BRANCHES,
    ROUTER_NAMES,
    ECVLRouter,
    MLPRouter,
    create_router,
    load_router,
    router_class,
)
from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

LEARNED = ("ecvl", "mlp", "mf", "gbdt", "linear")
FIXED = ("random", "all-large", "all-small")
SUBSETS = [subset for r in (1, 2, 3) for subset in itertools.combinations(BRANCHES, r)]


@pytest.fixture(scope="module")
def problem():
    X, y, _ = synthetic_problem(500, seed=1)
    X_test, y_test, _ = synthetic_problem(300, seed=2)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def fitted(problem):
    X, y, _, _ = problem
    return {name: create_router(name, **SMALL_PARAMS[name]).fit(X, y) for name in ROUTER_NAMES}


def test_registry_lists_every_router():
    assert set(ROUTER_NAMES) == {"ecvl", "mlp", "gbdt", "linear", "mf", "random", "all-large", "all-small"}
    for name in ROUTER_NAMES:
        router = create_router(name)
        assert router.name == name and router_class(name) is type(router)
        assert router.searches_threshold == (name in LEARNED)
        assert (router.fixed_threshold is None) == (name in LEARNED)


def test_ecvl_defaults_are_the_papers():
    router = ECVLRouter()
    assert (router.d_model, router.layers, router.heads, router.ffn, router.dropout) == (256, 2, 4, 512, 0.3)
    assert (router.epochs, router.batch_size, router.learning_rate) == (50, 64, 1e-3)
    network = router.build_network({"text": 384, "image": 1280, "stats": 13})
    assert len(network.encoder.layers) == 2
    layer = network.encoder.layers[0]
    assert layer.self_attn.num_heads == 4 and layer.self_attn.embed_dim == 256
    assert layer.linear1.out_features == 512 and layer.dropout.p == 0.3 and layer.self_attn.batch_first
    assert [p.in_features for p in network.projections] == [384, 1280, 13]
    assert network.head.in_features == 256 and network.head.out_features == 1
    assert MLPRouter().hidden == (512, 256, 128)


@pytest.mark.parametrize("name", LEARNED)
def test_learned_router_separates_an_easy_problem_and_beats_random(name, problem, fitted):
    _, _, X_test, y_test = problem
    p = fitted[name].predict_proba(X_test)
    auc = roc_auc_score(y_test, p)
    random_auc = roc_auc_score(y_test, fitted["random"].predict_proba(X_test))
    assert auc > 0.9
    assert auc > random_auc + 0.2


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_probabilities_are_float64_in_unit_interval(name, problem, fitted):
    _, _, X_test, _ = problem
    p = fitted[name].predict_proba(X_test)
    assert p.shape == (len(X_test),) and p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))


def test_fixed_policies(problem, fitted):
    X, _, X_test, _ = problem
    assert np.all(fitted["all-large"].predict_proba(X_test) == 0)
    assert np.all(fitted["all-small"].predict_proba(X_test) == 1)
    p = fitted["random"].predict_proba(X_test)
    assert 0.4 < np.mean(p >= fitted["random"].fixed_threshold) < 0.6
    reordered = np.arange(len(X_test))[::-1]
    np.testing.assert_array_equal(fitted["random"].predict_proba(X_test.take(reordered)), p[reordered])
    assert not np.array_equal(create_router("random", random_state=7).predict_proba(X_test), p)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_save_then_load_predicts_identically(name, problem, fitted, tmp_path: Path):
    _, _, X_test, _ = problem
    router = fitted[name]
    router.save(tmp_path / name)
    for loaded in (load_router(tmp_path / name), router_class(name).load(tmp_path / name)):
        assert type(loaded) is type(router) and loaded.get_params() == router.get_params()
        np.testing.assert_array_equal(loaded.predict_proba(X_test), router.predict_proba(X_test))


def test_loading_as_the_wrong_class_is_refused(fitted, tmp_path: Path):
    fitted["mlp"].save(tmp_path / "mlp")
    with pytest.raises(ValueError, match="holds a 'mlp' router, not 'ecvl'"):
        ECVLRouter.load(tmp_path / "mlp")
    with pytest.raises(ValueError, match="not a saved router"):
        load_router(tmp_path / "missing")


@pytest.mark.parametrize("name", LEARNED)
def test_one_seed_gives_identical_predictions(name, problem):
    X, y, X_test, _ = problem
    first = create_router(name, **SMALL_PARAMS[name], random_state=3).fit(X, y).predict_proba(X_test)
    second = create_router(name, **SMALL_PARAMS[name], random_state=3).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", ["ecvl", "mlp", "mf"])
def test_another_seed_gives_another_network(name, problem):
    X, y, X_test, _ = problem
    params = {**SMALL_PARAMS[name], "epochs": 1}
    first = create_router(name, **params, random_state=0).fit(X, y).predict_proba(X_test)
    second = create_router(name, **params, random_state=1).fit(X, y).predict_proba(X_test)
    assert not np.allclose(first, second)


def test_training_leaves_global_torch_state_alone(problem):
    X, y, _, _ = problem
    threads = torch.get_num_threads()
    rng_state = torch.get_rng_state()
    create_router("ecvl", **{**SMALL_PARAMS["ecvl"], "epochs": 1}).fit(X, y)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_a_query_without_image_gets_a_valid_probability(name, problem, fitted):
    _, _, X_test, _ = problem
    without = np.flatnonzero(~X_test.has_image)
    assert len(without) > 0 and np.all(X_test.image[without] == 0)
    p = fitted[name].predict_proba(X_test.take(without[:1]))
    assert p.shape == (1,) and 0 <= p[0] <= 1


def test_iter_fit_yields_every_epoch_with_a_usable_router(problem):
    X, y, X_test, _ = problem
    router = create_router("mlp", **{**SMALL_PARAMS["mlp"], "epochs": 3})
    seen = []
    for epoch in router.iter_fit(X, y):
        seen.append(epoch)
        assert router.predict_proba(X_test).shape == (len(X_test),)
    assert seen == [0, 1, 2] and router.n_epochs == 3


def test_state_snapshot_restores_an_earlier_epoch(problem):
    X, y, X_test, _ = problem
    router = create_router("ecvl", **{**SMALL_PARAMS["ecvl"], "epochs": 3})
    snapshots, predictions = [], []
    for _ in router.iter_fit(X, y):
        snapshots.append(router.get_state())
        predictions.append(router.predict_proba(X_test))
    router.set_state(snapshots[0])
    # float32 kernels may reorder sums between calls: equal to rounding, not bitwise
    np.testing.assert_allclose(router.predict_proba(X_test), predictions[0], rtol=0, atol=1e-6)
    assert np.abs(predictions[0] - predictions[-1]).max() > 1e-3


@pytest.mark.parametrize("name", ["ecvl", "mlp", "mf"])
def test_statistics_are_standardised_inside_the_router(name, problem):
    X, y, X_test, _ = problem
    params = {**SMALL_PARAMS[name], "epochs": 2}

    def rescaled(features: QueryFeatures) -> QueryFeatures:
        return dataclasses.replace(features, stats=features.stats * 1000 - 5)

    plain = create_router(name, **params).fit(X, y).predict_proba(X_test)
    scaled = create_router(name, **params).fit(rescaled(X), y).predict_proba(rescaled(X_test))
    np.testing.assert_allclose(plain, scaled, atol=0.02)


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("branches", SUBSETS, ids="+".join)
def test_every_branch_subset_trains_and_ignores_the_disabled_branches(name, branches, problem):
    X, y, X_test, _ = problem
    quick = {"gbdt": {"max_iter": 5}, "linear": SMALL_PARAMS["linear"]}
    params = quick.get(name, {**SMALL_PARAMS[name], "epochs": 1})
    router = create_router(name, **params, branches=branches).fit(X, y)
    p = router.predict_proba(X_test)
    assert p.shape == (len(X_test),) and np.all((p >= 0) & (p <= 1))
    noise = np.random.default_rng(0)
    changed = dataclasses.replace(
        X_test,
        **{
            b: noise.normal(size=getattr(X_test, b).shape).astype(np.float32) * 9
            for b in BRANCHES
            if b not in branches
        },
    )
    np.testing.assert_allclose(router.predict_proba(changed), p, rtol=0, atol=1e-6)
    if name == "ecvl":
        assert len(router.build_network({b: 4 for b in branches}).projections) == len(branches)


def test_branches_are_kept_in_canonical_order():
    assert create_router("ecvl", branches=["stats", "text"]).branches == ("text", "stats")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"branches": ()}, "branches is empty"),
        ({"branches": "text"}, "not a string"),
        ({"branches": ("text", "audio")}, "unknown branch 'audio'"),
        ({"branches": ("text", "text")}, "twice"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"d_model": 30, "heads": 4}, "divisible by heads"),
        ({"depth": 3}, "router 'ecvl' has no hyperparameter 'depth'"),
    ],
)
def test_bad_hyperparameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        create_router("ecvl", **params)


def test_unknown_router_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown router 'bert'; routers are ecvl, ecvl-multi, mlp"):
        create_router("bert")


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_bad_training_data_is_named(name, problem):
    X, y, _, _ = problem
    router = create_router(name, **SMALL_PARAMS[name])
    with pytest.raises(ValueError, match="y has 499 labels but X has 500 queries"):
        router.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0/1 labels; row 0"):
        router.fit(X, np.where(np.arange(len(y)) == 0, 2, y))
    with pytest.raises(TypeError, match="X must be QueryFeatures"):
        router.fit(X.text, y)
    with pytest.raises(ValueError, match=r"X.stats has a non-finite value in row 3 \(item 's1-q3'\)"):
        router.fit(dataclasses.replace(X, stats=np.where(np.arange(len(y))[:, None] == 3, np.nan, X.stats)), y)


@pytest.mark.parametrize("name", LEARNED)
def test_prediction_checks_fit_and_widths(name, problem, fitted):
    _, _, X_test, _ = problem
    with pytest.raises(NotFittedError, match=f"router '{name}' is not fitted"):
        create_router(name).predict_proba(X_test)
    narrow = dataclasses.replace(X_test, text=X_test.text[:, :5])
    with pytest.raises(ValueError, match="X.text has 5 columns but the router was trained on 16"):
        fitted[name].predict_proba(narrow)


def test_mismatched_feature_rows_are_refused_by_query_features(problem):
    X, _, _, _ = problem
    with pytest.raises(ValueError, match="QueryFeatures.image has 499 rows, expected 500"):
        dataclasses.replace(X, image=X.image[:-1])


def test_gbdt_with_a_single_class_predicts_it(problem):
    X, y, X_test, _ = problem
    router = create_router("gbdt", max_iter=5).fit(X, np.ones_like(y))
    assert np.all(router.predict_proba(X_test) == 1.0)


def test_linear_router_chooses_its_penalty_on_held_out_folds(problem):
    X, y, _, _ = problem
    router = create_router("linear", penalties=5, inner_folds=3).fit(X, y)
    model = router.get_state()["model"][-1]
    assert model.Cs_.tolist() == pytest.approx(np.geomspace(1e-5, 10.0, 5).tolist())
    assert model.C_ in model.Cs_ and model.scores_.shape == (3, 1, 5)
    assert model.C_ == model.Cs_[np.argmax(model.scores_[:, 0].mean(axis=0))]  # the best mean held-out log-loss
    with pytest.raises(ValueError, match="c_min <= c_max"):
        create_router("linear", c_min=1.0, c_max=0.1)
    with pytest.raises(ValueError, match="inner_folds must be at least 2"):
        create_router("linear", inner_folds=1)


def test_linear_router_keeps_the_weakest_penalty_when_a_class_has_one_query(problem):
    X, y, X_test, _ = problem
    labels = np.zeros(len(y), dtype=int)
    labels[0] = 1
    router = create_router("linear", penalties=3).fit(X, labels)
    assert router.get_state()["model"][-1].C == pytest.approx(10.0)
    assert np.all(router.predict_proba(X_test) < 0.5)
