"""Champion against challenger: does a router retrained with judged production traffic route it better?

The champion is the bundle that serves. The challenger is the same router and recipe trained on the
champion's training data plus judged captured queries. Both are compared on captured queries that neither
trained on: the captured queries are cut into repeated (grouped, stratified) folds; in each fold a
challenger is trained on the base data plus the other folds, and champion and challenger decide the test
fold. Per scenario this gives paired RCS differences over folds, summarised with the corrected resampled t
interval (``crossval.corrected_interval``).

The verdict: promote only when, at every scenario, the lower end of the 95 % interval of
challenger − champion is at least ``-margin`` (the challenger is not worse with 95 % confidence, up to a
stated non-inferiority margin), and every guaranteed scenario's promise still holds for the challenger on
the captured queries (``guarantee_check.check_guarantee`` on its out-of-fold probabilities).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ecvl_router.learning.crossval import Fold, corrected_interval
from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.learning.guarantee_check import check_guarantee
from ecvl_router.learning.recipes import RecipeSettings, train_with_recipe
from ecvl_router.learning.training import TrainedRouter
from ecvl_router.learning.training_set import TrainingSet, concat_training_sets
from ecvl_router.routers.base import Router
from ecvl_router.scenarios import Scenario

POLICIES = ("champion", "challenger")
DEFAULT_MARGIN = 0.005
"""Non-inferiority margin in RCS: a challenger whose interval reaches below ``-margin`` is kept out."""
GUARANTEE_REPETITIONS = 200
"""Calibration/test repetitions of the guarantee check on the captured queries."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Contest:
    """What champion and challenger are compared on.

    ``base``: the champion's training data; ``capture``: the judged captured queries (same pair, same
    labels rule); ``make_router(seed)``: a fresh router of the champion's kind; ``recipe``: its recipe.
    """

    champion: TrainedRouter
    make_router: Callable[[int], Router]
    recipe: str
    base: TrainingSet
    capture: TrainingSet
    settings: RecipeSettings = field(default_factory=RecipeSettings)


@dataclass(frozen=True)
class ContestResult:
    """One row per (fold, policy, scenario) with the test fold's metrics, and each policy's probabilities.

    ``p`` maps (policy, scenario name) to the probability of every captured query: the champion's, and the
    challenger's out of fold in the first repetition.
    """

    rows: pd.DataFrame
    p: dict[tuple[str, str], np.ndarray]


@dataclass(frozen=True)
class Verdict:
    """Promote the challenger or keep the champion, and why."""

    promote: bool
    reasons: list[str]

    @property
    def word(self) -> str:
        return "promote" if self.promote else "keep"


def run_contest(contest: Contest, scenarios: Sequence[Scenario], folds: Sequence[Fold], *, seed: int = 0,
                progress: Progress | None = None) -> ContestResult:
    """Train a challenger in every fold of the captured queries and score it with the champion on the test fold."""
    capture = contest.capture
    p = {("champion", s.name): contest.champion.predict_proba(capture.features, s.name) for s in scenarios}
    first_repeat = min(fold.repeat for fold in folds)
    for scenario in scenarios:
        p[("challenger", scenario.name)] = np.full(len(capture), np.nan)
    rows: list[dict[str, Any]] = []
    for done, fold in enumerate(folds, start=1):
        data = concat_training_sets(contest.base, capture.take(fold.train))
        challenger = train_with_recipe(contest.recipe, contest.make_router, data, scenarios, seed=seed, settings=contest.settings)
        test = capture.take(fold.test)
        for scenario in scenarios:
            for policy, trained in zip(POLICIES, (contest.champion, challenger)):
                to_edge, p_test, tau = trained.decide(test.features, scenario.name)
                metrics = evaluate_decisions(to_edge, test.pair, None, scenario)
                rows.append({"repeat": fold.repeat, "fold": fold.fold, "policy": policy, "scenario": scenario.name,
                             "tau": tau, **{key: float(metrics[key]) for key in ("apsp", "ca", "ail", "rcs")}})
                if policy == "challenger" and fold.repeat == first_repeat:
                    p[("challenger", scenario.name)][fold.test] = p_test
        if progress is not None:
            progress(done, len(folds))
    return ContestResult(pd.DataFrame(rows), p)


def summarise_contest(rows: pd.DataFrame, test_share: float) -> pd.DataFrame:
    """Per scenario: each policy's mean RCS with its interval, and the paired challenger − champion difference."""
    out = []
    for scenario, group in rows.groupby("scenario", sort=False):
        wide = group.pivot_table(index=["repeat", "fold"], columns="policy", values="rcs")
        entry: dict[str, Any] = {"scenario": scenario}
        for policy in POLICIES:
            interval = corrected_interval(wide[policy].to_numpy(), test_share)
            entry.update({f"{policy}_rcs": interval.mean, f"{policy}_low": interval.low, f"{policy}_high": interval.high})
        diff = corrected_interval((wide["challenger"] - wide["champion"]).to_numpy(), test_share)
        entry.update({"diff": diff.mean, "diff_low": diff.low, "diff_high": diff.high,
                      "champion_ca": group.loc[group.policy == "champion", "ca"].mean(),
                      "challenger_ca": group.loc[group.policy == "challenger", "ca"].mean()})
        out.append(entry)
    return pd.DataFrame(out)


def guarantee_results(result: ContestResult, contest: Contest, scenarios: Sequence[Scenario], *, seed: int = 0) -> pd.DataFrame:
    """For each guaranteed scenario: the challenger's violation rate on the captured queries and whether the promise holds.

    The check recalibrates the challenger's out-of-fold probabilities ``GUARANTEE_REPETITIONS`` times on half
    the captured queries and tests on the other half; the promise holds unless the violation rate is above
    1 − confidence by a one-sided binomial test at level 0.05.
    """
    out = []
    for scenario in (s for s in scenarios if s.guaranteed):
        checked = check_guarantee(
            result.p[("challenger", scenario.name)], contest.capture.pair, mes=scenario.mes,
            max_drops=[scenario.max_quality_drop], confidences=[scenario.confidence], reference=scenario,
            repetitions=GUARANTEE_REPETITIONS, seed=seed,
        )
        guaranteed = checked[checked.policy == "guaranteed"]
        violations, total = int(guaranteed.violated.sum()), len(guaranteed)
        allowed = 1 - float(scenario.confidence)
        pvalue = float(stats.binomtest(violations, total, allowed, alternative="greater").pvalue)
        out.append({"scenario": scenario.name, "max_quality_drop": scenario.max_quality_drop,
                    "confidence": scenario.confidence, "violation_rate": violations / total,
                    "allowed": allowed, "pvalue": pvalue, "holds": pvalue >= 0.05})
    return pd.DataFrame(out, columns=["scenario", "max_quality_drop", "confidence", "violation_rate", "allowed", "pvalue", "holds"])


def decide(summary: pd.DataFrame, guarantees: pd.DataFrame, *, margin: float = DEFAULT_MARGIN) -> Verdict:
    """Promote only if the challenger is not worse than ``margin`` with 95 % confidence anywhere and every promise holds."""
    reasons = []
    for row in summary.itertuples():
        if not row.diff_low >= -margin:
            reasons.append(f"{row.scenario}: challenger − champion RCS {row.diff:+.4f} [{row.diff_low:+.4f}, {row.diff_high:+.4f}] "
                           f"reaches below −{margin:g}")
    for row in guarantees.itertuples():
        if not row.holds:
            reasons.append(f"{row.scenario}: the guarantee fails on captured queries (violation rate {row.violation_rate:.3f} "
                           f"> {row.allowed:.3f}, p = {row.pvalue:.3g})")
    if reasons:
        return Verdict(False, reasons)
    return Verdict(True, [f"not worse than −{margin:g} RCS with 95 % confidence at any of {len(summary)} scenarios"
                          + (f"; {len(guarantees)} guarantees hold" if len(guarantees) else "")])
