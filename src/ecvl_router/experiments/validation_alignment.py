"""Validation–test alignment of the τ search (paper, Appendix B.2, Figure 9).

For each scenario, the RCS of the trained router (its state kept for that scenario) at every τ of the
grid, on the validation split and on the test split, with the Pearson correlation of the two curves and
their mean absolute difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.experiments.main_table import PairResult
from ecvl_router.features.features import QueryFeatures
from ecvl_router.metrics import decisions_at
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.thresholds import THRESHOLD_GRID


@dataclass(frozen=True)
class AlignmentCurve:
    """One scenario's RCS-vs-τ curves on validation and test, and how closely they agree."""

    scenario: str
    grid: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    tau: float
    pearson: float
    mean_abs_diff: float


def _rcs_curve(p: np.ndarray, task_part, scenario: Scenario, grid: np.ndarray) -> np.ndarray:
    view, labels = task_part
    return np.atleast_1d(evaluate_decisions(decisions_at(p, grid), view, labels, scenario)["rcs"])


def alignment_curves(
    result: PairResult, features: QueryFeatures, scenarios: list[Scenario], *, router: str = "ecvl", grid: np.ndarray = THRESHOLD_GRID
) -> list[AlignmentCurve]:
    """The curves of ``router`` on ``result``'s task; ``features`` cover (at least) the task's items.

    The Pearson correlation is NaN where either curve is constant.
    """
    if router not in result.trained:
        raise ValueError(f"router {router!r} was not trained on {result.pair.label}; trained: {', '.join(result.trained)}")
    trained = result.trained[router]
    task = result.task
    task_features = features.select(task.pair.item_ids)
    curves = []
    for scenario in scenarios:
        parts = {}
        for name in ("val", "test"):
            p = trained.predict_proba(task_features.take(task.part(name)), scenario.name)
            parts[name] = _rcs_curve(p, task.view(name), scenario, grid)
        val, test = parts["val"], parts["test"]
        constant = np.ptp(val) == 0 or np.ptp(test) == 0
        pearson = float("nan") if constant else float(stats.pearsonr(val, test).statistic)
        curves.append(AlignmentCurve(scenario.name, np.asarray(grid), val, test, trained.choice(scenario.name).tau,
                                     pearson, float(np.mean(np.abs(val - test)))))
    return curves
