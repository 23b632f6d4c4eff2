"""Cross-validated comparison of routers on one pair of a dataset (``ecvl-router evaluate-routers``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from ecvl_router.learning.crossval import fold_strata, repeated_stratified_folds
from ecvl_router.data.demo.truth import bayes_probabilities, load_truth
from ecvl_router.data.rsd import RSD
from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LabelRule
from ecvl_router.routers import router_class
from ecvl_router.learning.router_cv import CVInputs, CVSettings, PolicySpec, cross_validate, summarise
from ecvl_router.learning.routing_task import build_task, score_targets
from ecvl_router.scenarios import Scenario

DEFAULT_POLICIES = ("linear", "linear:oof", "ecvl", "ecvl-multi:oof", "mlp", "gbdt", "mf", "random")
"""What ``evaluate-routers`` compares by default (the trivial policies and the oracle are always added)."""


@dataclass(frozen=True)
class Comparison:
    """Per-fold rows, their summary, and what was compared."""

    folds: pd.DataFrame
    summary: pd.DataFrame
    n_queries: int
    has_bayes: bool


def compare_routers(
    rsd: RSD,
    features: QueryFeatures,
    *,
    edge: str,
    cloud: str,
    scenarios: Sequence[Scenario],
    policies: Sequence[PolicySpec],
    n_folds: int = 5,
    n_repeats: int = 3,
    rule: LabelRule = "mes",
    k: float = 1,
    settings: CVSettings = CVSettings(),
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> Comparison:
    """Repeated stratified k-fold comparison of ``policies`` (plus trivial, oracle and, on demo data, bayes) on one pair.

    ``features`` must cover the pair's items; the scenarios must share one MES.
    """
    mes_values = {s.mes for s in scenarios}
    if len(mes_values) != 1:
        raise ValueError(f"the scenarios of one comparison must share one MES, got {sorted(mes_values)}")
    task = build_task(rsd, edge, cloud, mes=mes_values.pop(), rule=rule, k=k, seed=settings.seed)
    truth = load_truth(rsd.root)
    bayes = None if truth is None else bayes_probabilities(truth, task.pair, mes=task.mes, rule=rule, k=k)
    strata = fold_strata(task.pair.sources, task.labels, n_folds)
    inputs = CVInputs(
        pair=task.pair,
        labels=task.labels,
        features=features.select(task.pair.item_ids),
        strata=strata,
        targets=score_targets(rsd, task) if any(router_class(p.router).learns_scores for p in policies) else None,
        bayes=bayes,
    )
    folds = repeated_stratified_folds(strata, n_folds=n_folds, n_repeats=n_repeats, seed=settings.seed)
    rows = cross_validate(inputs, policies, scenarios, folds, settings, progress, jobs=jobs)
    return Comparison(rows, summarise(rows, test_share=1 / (n_folds - 1)), len(task.pair), bayes is not None)
