"""Cross-validated comparison of routing policies on one (edge, cloud) pair.

Every learned router is trained inside each training fold with its recipe — ``split`` (the paper's: best
epoch and τ on a stratified 25 % validation part of the training fold), ``oof`` (``ecvl_router.learning.oof``) or
``bag`` (``ecvl_router.learning.bagging``: split-recipe members over seeds and validation parts, τ out of bag) —
and is scored on the test fold it never saw, next to all-at-large, all-at-small, the oracle and, on
simulated data, the ``bayes`` policy (the simulation's true P(edge competent | visible), τ searched on
the training fold). ``summarise`` turns the per-fold rows into means, confidence intervals, the share of
the headroom captured and the paired difference against the best trivial policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ecvl_router.learning.bagging import MEMBERS
from ecvl_router.learning.crossval import Fold, corrected_interval, headroom_share
from ecvl_router.data.rsd import PairView
from ecvl_router.learning.evaluation import evaluate_decisions, reference_decisions
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.oof import INNER_FOLDS
from ecvl_router.learning.recipes import RECIPES, RecipeSettings, train_with_recipe
from ecvl_router.learning.training_set import TrainingSet
from ecvl_router.routers import create_router, router_class
from ecvl_router.routers.multi import ScoreTargets
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import TrainedRouter, search_threshold

"""Recipes of a cross-validated policy: those of ``train`` and seed bagging (``ecvl_router.learning.bagging``)."""
TRIVIAL = ("all-large", "all-small")
METRICS = ("apsp", "ca", "ail", "rcs")
SHARES = ("apsp", "ca")
"""Metrics that are shares: their intervals are clipped to [0, 1]."""
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PolicySpec:
    """A learned router and the recipe it is trained with, written ``ecvl``, ``ecvl:oof`` or ``ecvl:bag``."""

    router: str
    recipe: str = "split"

    @property
    def label(self) -> str:
        return self.router if self.recipe == "split" else f"{self.router}:{self.recipe}"

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        """``name[:recipe]``; raises ValueError for an unknown router or recipe."""
        router, _, recipe = text.strip().partition(":")
        router_class(router)
        recipe = recipe or "split"
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r} in {text!r}; recipes are {', '.join(RECIPES)}")
        return cls(router, recipe)


@dataclass(frozen=True)
class CVSettings:
    """How learned routers are trained inside a fold."""

    seed: int = 0
    router_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    inner_folds: int = INNER_FOLDS
    calibration: str = "isotonic"
    fallback_z: float | None = 1.0
    members: int = MEMBERS
    """Members of the bag recipe."""

    def recipe_settings(self) -> RecipeSettings:
        """The recipes' settings these stand for."""
        return RecipeSettings(folds=self.inner_folds, calibration=self.calibration,  # type: ignore[arg-type]
                              fallback_z=self.fallback_z, members=self.members)


@dataclass(frozen=True)
class CVInputs:
    """One pair's queries: pair view, labels, features, strata; every model's scores, the bayes probabilities and
    the queries' groups (each kept on one side of every split) if known."""

    pair: PairView
    labels: np.ndarray
    features: QueryFeatures
    strata: np.ndarray
    targets: ScoreTargets | None = None
    bayes: np.ndarray | None = None
    groups: np.ndarray | None = None

    def training_set(self, learns_scores: bool) -> TrainingSet:
        """All queries as a training set whose targets are every model's scores or the labels."""
        targets = self.targets if learns_scores and self.targets is not None else self.labels
        return TrainingSet(self.features, targets, self.labels, self.pair, self.strata, self.groups)


def cross_validate(
    inputs: CVInputs,
    policies: Sequence[PolicySpec],
    scenarios: Sequence[Scenario],
    folds: Sequence[Fold],
    settings: CVSettings = CVSettings(),
    progress: Progress | None = None,
    *,
    jobs: int = 1,
) -> pd.DataFrame:
    """One row per (fold, policy, scenario) with the test fold's APSP, CA, AIL, RCS, τ and any fallback.

    With ``jobs`` > 1 the folds run in that many worker processes (each router trains on one thread).
    """
    tasks = (delayed(fold_rows)(inputs, policies, scenarios, fold, settings) for fold in folds)
    rows: list[dict[str, Any]] = []
    for done, fold_result in enumerate(Parallel(n_jobs=jobs, return_as="generator")(tasks), start=1):
        rows += fold_result
        if progress is not None:
            progress(done, len(folds))
    return pd.DataFrame(rows)


def fold_row(
    fold: Fold, policy: str, scenario: Scenario, to_edge: np.ndarray, test_pair: PairView, test_labels: np.ndarray,
    tau: float = float("nan"), fallback: str | None = None,
) -> dict[str, Any]:
    """The row of ``policy``'s decisions ``to_edge`` on the test part of ``fold``, in the columns ``summarise`` reads."""
    metrics = evaluate_decisions(to_edge, test_pair, test_labels, scenario)
    return {"repeat": fold.repeat, "fold": fold.fold, "policy": policy, "scenario": scenario.name, "mes": scenario.mes,
            **{key: float(metrics[key]) for key in METRICS}, "tau": tau, "fallback": fallback or ""}


def fold_rows(
    inputs: CVInputs, policies: Sequence[PolicySpec], scenarios: Sequence[Scenario], fold: Fold, settings: CVSettings
) -> list[dict[str, Any]]:
    """The rows of one fold: reference policies, then every policy trained on the fold's training part."""
    test_pair, test_labels = inputs.pair.take(fold.test), inputs.labels[fold.test]
    rows: list[dict[str, Any]] = []

    def record(policy: str, scenario: Scenario, to_edge: np.ndarray, tau: float = float("nan"), fallback: str | None = None) -> None:
        rows.append(fold_row(fold, policy, scenario, to_edge, test_pair, test_labels, tau, fallback))

    for scenario in scenarios:
        for name in (*TRIVIAL, "oracle"):
            record(name, scenario, reference_decisions(name, test_labels))
        if inputs.bayes is not None:
            tau = search_threshold(inputs.bayes[fold.train], inputs.pair.take(fold.train), scenario).tau
            record("bayes", scenario, inputs.bayes[fold.test] >= tau, tau)
    X_test = inputs.features.take(fold.test)
    for spec in policies:
        trained = train_policy(spec, inputs, fold.train, scenarios, settings)
        for scenario in scenarios:
            to_edge, _, tau = trained.decide(X_test, scenario.name)
            record(spec.label, scenario, to_edge, tau, trained.choice(scenario.name).fallback)
    return rows


def train_policy(
    spec: PolicySpec, inputs: CVInputs, rows: np.ndarray, scenarios: Sequence[Scenario], settings: CVSettings
) -> TrainedRouter:
    """Train ``spec`` on the queries ``rows`` of ``inputs`` with its recipe."""
    params = settings.router_params.get(spec.router, {})

    def make(seed: int):
        return create_router(spec.router, random_state=seed, **params)

    learns_scores = router_class(spec.router).learns_scores
    if learns_scores and inputs.targets is None:
        raise ValueError(f"router {spec.router!r} needs every model's scores")
    data = inputs.training_set(learns_scores).take(rows)
    return train_with_recipe(spec.recipe, make, data, scenarios, seed=settings.seed, settings=settings.recipe_settings())


def summarise(rows: pd.DataFrame, test_share: float) -> pd.DataFrame:
    """Per (scenario, policy): mean and 95 % CI of each metric, headroom shares, paired gain over the best trivial policy.

    ``test_share`` is n_test / n_train of a fold (the Nadeau–Bengio correction). The best trivial policy
    is the one of all-at-large and all-at-small with the higher mean RCS; the headroom share is measured
    against the oracle and, on simulated data, against ``bayes``.
    """
    summary = []
    for scenario, block in rows.groupby("scenario", sort=False):
        by_policy = {policy: part.sort_values(["repeat", "fold"]) for policy, part in block.groupby("policy", sort=False)}
        mean_rcs = {policy: part["rcs"].mean() for policy, part in by_policy.items()}
        trivial = max(TRIVIAL, key=lambda name: mean_rcs[name])
        baseline = by_policy[trivial]["rcs"].to_numpy()
        for policy, part in by_policy.items():
            entry: dict[str, Any] = {"scenario": scenario, "mes": part["mes"].iloc[0], "policy": policy, "folds": len(part)}
            for key in METRICS:
                interval = corrected_interval(part[key].to_numpy(), test_share)
                low, high = (max(interval.low, 0.0), min(interval.high, 1.0)) if key in SHARES else (interval.low, interval.high)
                entry.update({key: interval.mean, f"{key}_low": low, f"{key}_high": high})
            gain = corrected_interval(part["rcs"].to_numpy() - baseline, test_share)
            entry.update({"best_trivial": trivial, "gain": gain.mean, "gain_low": gain.low, "gain_high": gain.high})
            entry["headroom_oracle"] = headroom_share(mean_rcs[policy], mean_rcs[trivial], mean_rcs["oracle"])
            if "bayes" in mean_rcs:
                entry["headroom_bayes"] = headroom_share(mean_rcs[policy], mean_rcs[trivial], mean_rcs["bayes"])
            entry["fallback_share"] = float((part["fallback"] != "").mean())
            summary.append(entry)
    return pd.DataFrame(summary)
