"""Repeated stratified folds, the corrected resampled t interval, headroom shares, and `summarise`;
τ is never searched on a test fold (`cross_validate` with every recipe and the bayes policy)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ecvl_router.learning import oof, router_cv, training
from ecvl_router.learning.crossval import (
    corrected_interval,
    fold_strata,
    headroom_share,
    pooled_strata,
    repeated_stratified_folds,
)
from ecvl_router.learning.router_cv import CVInputs, CVSettings, PolicySpec, cross_validate, summarise
from ecvl_router.routers.multi import ScoreTargets
from ecvl_router.scenarios import SCENARIOS

from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem


def _strata(seed: int = 0, n: int = 103) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sources = rng.choice(["charts", "ocr", "math"], size=n, p=[0.5, 0.3, 0.2])
    labels = rng.random(n) < 0.4
    return fold_strata(sources, labels, 5)


# --- folds ----------------------------------------------------------------------------------------


def test_test_folds_partition_each_repetition_and_are_disjoint_from_their_train_part():
    strata = _strata()
    folds = repeated_stratified_folds(strata, n_folds=5, n_repeats=3, seed=7)
    assert len(folds) == 15
    assert sorted({(f.repeat, f.fold) for f in folds}) == [(r, k) for r in range(3) for k in range(5)]
    for repeat in range(3):
        tests = [f.test for f in folds if f.repeat == repeat]
        counts = np.bincount(np.concatenate(tests), minlength=len(strata))
        assert (counts == 1).all()  # every row in exactly one test fold
    for fold in folds:
        assert len(np.intersect1d(fold.train, fold.test)) == 0
        assert len(fold.train) + len(fold.test) == len(strata)
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(len(strata)))


def test_each_stratum_is_spread_over_the_test_folds_within_one_row():
    strata = _strata(seed=3, n=211)
    values, counts = np.unique(strata, return_counts=True)
    assert counts.min() >= 5  # no pooling: the guarantee is about the strata themselves
    k = 5
    for fold in repeated_stratified_folds(strata, n_folds=k, n_repeats=2, seed=1):
        for value, count in zip(values, counts):
            in_test = int(np.sum(strata[fold.test] == value))
            assert math.floor(count / k) <= in_test <= math.ceil(count / k), (value, count, in_test)


def test_repetitions_shuffle_differently_and_the_seed_reproduces_them():
    strata = _strata()
    folds = repeated_stratified_folds(strata, n_folds=4, n_repeats=2, seed=0)
    first = [set(f.test.tolist()) for f in folds if f.repeat == 0]
    second = [set(f.test.tolist()) for f in folds if f.repeat == 1]
    assert all(a != b for a in first for b in second)
    again = repeated_stratified_folds(strata, n_folds=4, n_repeats=2, seed=0)
    assert all(np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train) for a, b in zip(folds, again))
    other = repeated_stratified_folds(strata, n_folds=4, n_repeats=2, seed=5)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_fold_strata_falls_back_to_the_label_for_rare_source_label_pairs():
    sources = np.array(["a"] * 10 + ["b"] * 10 + ["rare"] * 2)
    labels = np.array([0, 1] * 5 + [0] * 5 + [1] * 5 + [1, 0])
    strata = fold_strata(sources, labels, 3)
    assert list(strata[-2:]) == ["label=1", "label=0"]
    assert set(strata[:20]) == {"a|0", "a|1", "b|0", "b|1"}


def test_rare_strata_are_pooled_and_still_give_a_full_partition():
    # Three singleton strata and one pair, each rarer than the 5 folds: pooled into one of 5 rows.
    strata = np.array(["big"] * 40 + ["medium"] * 12 + ["x", "y", "w", "z", "z"], dtype=object)
    pooled = pooled_strata(strata, 5)
    assert set(pooled[-5:]) == {"(rare)"} and list(pooled[:52]) == list(strata[:52])
    # A pool that is still too small joins the largest stratum.
    small_pool = pooled_strata(np.array(["big"] * 10 + ["medium"] * 6 + ["x", "y"], dtype=object), 5)
    assert list(small_pool[-2:]) == ["big", "big"]
    assert pooled_strata(np.array(["a"] * 5 + ["b"] * 5, dtype=object), 5).tolist() == ["a"] * 5 + ["b"] * 5
    for strata_case in (strata, np.array(["big"] * 10 + ["medium"] * 6 + ["x", "y"], dtype=object)):
        folds = repeated_stratified_folds(strata_case, n_folds=5, n_repeats=2, seed=0)
        for repeat in range(2):
            counts = np.bincount(np.concatenate([f.test for f in folds if f.repeat == repeat]), minlength=len(strata_case))
            assert (counts == 1).all()


def test_too_few_rows_or_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="too few"):
        repeated_stratified_folds(np.array(["a", "b", "c"], dtype=object), n_folds=5)
    with pytest.raises(ValueError, match="too few"):
        repeated_stratified_folds(np.array(["a", "a", "b", "b"], dtype=object), n_folds=3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        repeated_stratified_folds(_strata(), n_folds=1)
    with pytest.raises(ValueError, match="repeats"):
        repeated_stratified_folds(_strata(), n_folds=3, n_repeats=0)


# --- statistics -----------------------------------------------------------------------------------


def test_corrected_interval_matches_a_hand_computation():
    values = [0.61, 0.58, 0.66, 0.70, 0.55, 0.63]
    test_share = 1 / 4
    x = np.array(values)
    mean = x.sum() / len(x)
    s2 = ((x - mean) ** 2).sum() / (len(x) - 1)
    half = stats.t.ppf(0.975, len(x) - 1) * math.sqrt(s2 * (1 / len(x) + test_share))
    interval = corrected_interval(values, test_share)
    assert interval.mean == pytest.approx(mean, abs=1e-12)
    assert interval.low == pytest.approx(mean - half, abs=1e-12)
    assert interval.high == pytest.approx(mean + half, abs=1e-12)
    # The correction widens the naive interval; a 90 % interval is narrower than the 95 % one.
    naive = stats.t.ppf(0.975, len(x) - 1) * math.sqrt(s2 / len(x))
    assert interval.high - interval.low > 2 * naive
    narrower = corrected_interval(values, test_share, level=0.9)
    assert interval.low < narrower.low < narrower.high < interval.high
    assert interval.excludes_zero  # all values are far above 0


def test_corrected_interval_edge_cases():
    single = corrected_interval([0.4], 0.25)
    assert single.mean == 0.4 and single.low == -math.inf and single.high == math.inf and not single.excludes_zero
    constant = corrected_interval([0.0, 0.0, 0.0], 0.5)
    assert (constant.mean, constant.low, constant.high) == (0.0, 0.0, 0.0) and not constant.excludes_zero
    negative = corrected_interval([-1.0, -1.1, -0.9, -1.05], 0.25)
    assert negative.high < 0 and negative.excludes_zero


def test_headroom_share():
    assert headroom_share(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert headroom_share(0.9, 0.5, 0.9) == pytest.approx(1.0)
    assert headroom_share(0.5, 0.5, 0.9) == 0.0
    assert headroom_share(0.4, 0.5, 0.9) == pytest.approx(-0.25)
    assert math.isnan(headroom_share(0.5, 0.5, 0.5))
    assert math.isnan(headroom_share(0.7, 0.6, 0.6 + 1e-14))


# --- summarise ------------------------------------------------------------------------------------


def _fold_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    means = {"all-large": 0.60, "all-small": 0.55, "oracle": 0.95, "router": 0.70, "bayes": 0.80}
    rows = []
    for scenario, shift in (("quality", 0.0), ("speed", -0.2)):
        for repeat in range(2):
            for fold in range(3):
                for policy, mean in means.items():
                    # In "speed" all-small is the better trivial policy.
                    value = mean + (0.2 if scenario == "speed" and policy == "all-small" else 0.0) + shift
                    rcs = value + rng.normal(scale=0.02)
                    rows.append({"repeat": repeat, "fold": fold, "policy": policy, "scenario": scenario, "mes": 6.0,
                                 "apsp": rng.random(), "ca": rng.random(), "ail": rng.random(), "rcs": rcs,
                                 "tau": 0.5, "fallback": "all-large" if policy == "router" and fold == 0 else ""})
    return pd.DataFrame(rows)


def test_summarise_pairs_folds_against_the_best_trivial_policy():
    rows = _fold_rows()
    summary = summarise(rows, test_share=0.5)
    assert len(summary) == 10
    for scenario, block in summary.groupby("scenario"):
        part = rows[rows["scenario"] == scenario]
        means = part.groupby("policy")["rcs"].mean()
        best = "all-large" if means["all-large"] >= means["all-small"] else "all-small"
        assert best == {"quality": "all-large", "speed": "all-small"}[scenario]
        assert set(block["best_trivial"]) == {best}
        by = block.set_index("policy")
        assert by.loc[best, "gain"] == 0.0 and by.loc[best, "gain_low"] == 0.0 and by.loc[best, "gain_high"] == 0.0
        assert by.loc["oracle", "headroom_oracle"] == pytest.approx(1.0)
        assert by.loc["bayes", "headroom_bayes"] == pytest.approx(1.0)
        assert by.loc[best, "headroom_oracle"] == 0.0
        # The router's gain is the mean of its per-fold differences, paired by (repeat, fold).
        router = part[part["policy"] == "router"].set_index(["repeat", "fold"])["rcs"]
        trivial = part[part["policy"] == best].set_index(["repeat", "fold"])["rcs"]
        diff = (router - trivial.loc[router.index]).to_numpy()
        expected = corrected_interval(diff, 0.5)
        assert by.loc["router", "gain"] == pytest.approx(expected.mean)
        assert by.loc["router", "gain_low"] == pytest.approx(expected.low)
        assert by.loc["router", "rcs"] == pytest.approx(router.mean())
        assert by.loc["router", "headroom_oracle"] == pytest.approx((router.mean() - means[best]) / (means["oracle"] - means[best]))
        assert by.loc["router", "fallback_share"] == pytest.approx(2 / 6)
        assert by.loc["oracle", "fallback_share"] == 0.0
        assert (by["folds"] == 6).all()


def test_summarise_does_not_depend_on_the_order_of_the_rows():
    rows = _fold_rows(seed=4)
    shuffled = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    a = summarise(rows, 0.25).sort_values(["scenario", "policy"]).reset_index(drop=True)
    b = summarise(shuffled, 0.25).sort_values(["scenario", "policy"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


# --- τ is chosen on training data only ------------------------------------------------------------


def test_tau_is_never_searched_on_the_test_fold(monkeypatch):
    features, labels, pair = synthetic_problem(80, seed=11)
    rng = np.random.default_rng(0)
    third = np.round(np.clip(5 + 2 * features.text[:, 1], 1, 10))
    scores = np.column_stack([np.round(pair.score_edge), pair.score_cloud, third])
    inputs = CVInputs(
        pair=pair,
        labels=labels,
        features=features,
        strata=fold_strata(pair.sources, labels, 2),
        targets=ScoreTargets(scores, ("edge-model", "cloud-model", "third"), "edge-model", "cloud-model", 6.0),
        bayes=np.clip(labels * 0.6 + rng.random(len(labels)) * 0.4, 0, 1),
    )
    seen: list[set[str]] = []
    original = training.search_threshold

    def recording(p_val, pair_val, scenario, *args, **kwargs):
        seen.append(set(pair_val.item_ids.tolist()))
        return original(p_val, pair_val, scenario, *args, **kwargs)

    for module in (training, oof, router_cv):
        monkeypatch.setattr(module, "search_threshold", recording)
    params = {"gbdt": SMALL_PARAMS["gbdt"], "ecvl-multi": {"d_model": 8, "epochs": 2, "batch_size": 32}}
    settings = CVSettings(seed=0, router_params=params, inner_folds=2)
    policies = [PolicySpec.parse(text) for text in ("gbdt", "gbdt:oof", "ecvl-multi:oof")]
    scenarios = [SCENARIOS["quality"], SCENARIOS["speed"]]
    folds = repeated_stratified_folds(inputs.strata, n_folds=2, n_repeats=1, seed=0)
    for fold in folds:
        seen.clear()
        rows = cross_validate(inputs, policies, scenarios, [fold], settings)
        test_ids = set(pair.item_ids[fold.test].tolist())
        train_ids = set(pair.item_ids[fold.train].tolist())
        # bayes (2 scenarios) + gbdt split (epochs × scenarios) + two oof policies (2 scenarios each)
        assert len(seen) >= 2 + 2 + 4
        for ids in seen:
            assert ids and not ids & test_ids
            assert ids <= train_ids
        assert set(rows["policy"]) == {"all-large", "all-small", "oracle", "bayes", "gbdt", "gbdt:oof", "ecvl-multi:oof"}
        assert len(rows) == 7 * len(scenarios)


def test_policy_spec_parse():
    assert PolicySpec.parse("ecvl") == PolicySpec("ecvl", "split")
    assert PolicySpec.parse(" gbdt:oof ").label == "gbdt:oof"
    assert PolicySpec.parse("ecvl:split").label == "ecvl"
    with pytest.raises(ValueError, match="unknown router"):
        PolicySpec.parse("nope:oof")
    with pytest.raises(ValueError, match="unknown recipe"):
        PolicySpec.parse("ecvl:cv")
