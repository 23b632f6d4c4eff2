"""Risk control for guaranteed scenarios: the threshold that certifies a bounded quality drop.

For a threshold tau, the quality drop is APSP(all-at-large) - APSP(routed) = mean_i L_i with
L_i = 1[cloud score >= MES] - 1[routed score >= MES] in {-1, 0, 1}. Only queries routed to the edge
contribute: L_i = 1 where the edge fails and the cloud succeeds ("worse"), L_i = -1 where the edge
succeeds and the cloud fails ("better"). With a = P(worse) and b = P(better), the drop is a - b.

``drop_pvalue`` tests H0: a - b > max_quality_drop with Clopper-Pearson bounds on a and b, the level
split between them (Bonferroni); ``guaranteed_threshold`` tests the tau grid in a fixed sequence from
all-cloud towards all-edge and keeps the last threshold rejected before the first non-rejection.
The formula and what the guarantee means: docs/guarantees.md.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import bdtr, bdtrc, expit

from ecvl_router.data.rsd import PairView
from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.metrics import decisions_at
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.thresholds import ALL_CLOUD_TAU, ThresholdChoice, check_probabilities, choice_at

GUARANTEE_GRID: np.ndarray = np.unique(np.concatenate([np.round(np.arange(101) * 0.01, 2), expit(np.linspace(-9.2, 9.2, 921))]))
"""The tau grid of a guaranteed scenario: 0, 0.01, ..., 1 (it contains THRESHOLD_GRID) and 921 points evenly
spaced in logit from -9.2 to 9.2 (about 1e-4 to 1 - 1e-4; at most 0.005 apart), which resolve the tails where
a router's probabilities pile up. Fixed-sequence testing pays nothing for more hypotheses, so a finer grid
only lets tau get closer to the bound."""

CREDIT_SHARE = 0.5
"""Share of the test level spent on the lower bound of b (the credit for queries the edge gets right
and the cloud gets wrong); the rest goes to the upper bound of a. Fixed before seeing data."""


def drop_counts(to_edge: ArrayLike, pair: PairView, mes: float) -> tuple[np.ndarray, np.ndarray]:
    """(worse, better) counts per decision vector: edge-routed queries with L = 1 and with L = -1.

    ``to_edge`` is (n,) or (t, n); the counts are scalars (as 0-d arrays) or (t,) accordingly.
    """
    decisions = np.asarray(to_edge, dtype=bool)
    edge_ok = np.asarray(pair.score_edge) >= mes
    cloud_ok = np.asarray(pair.score_cloud) >= mes
    worse = (decisions & cloud_ok & ~edge_ok).sum(axis=-1)
    better = (decisions & edge_ok & ~cloud_ok).sum(axis=-1)
    return worse, better


def quality_drop(to_edge: ArrayLike, pair: PairView, mes: float) -> float | np.ndarray:
    """APSP(all-at-large) - APSP(routed) at ``mes``: mean L per decision vector."""
    worse, better = drop_counts(to_edge, pair, mes)
    drop = (worse - better) / len(pair)
    return float(drop) if np.ndim(drop) == 0 else drop


def drop_pvalue(worse: int, better: int, n: int, max_drop: float, *, credit_share: float = CREDIT_SHARE) -> float:
    """A valid finite-sample p-value for H0: drop > ``max_drop``, from ``worse`` and ``better`` among ``n`` queries.

    With w = ``credit_share``, T_a(x) = P(Binom(n, x) <= worse) and T_b(y) = P(Binom(n, y) >= better),
    p is the smallest level alpha at which the Clopper-Pearson bounds U_a((1-w) alpha) and
    L_b(w alpha) satisfy U_a - L_b <= max_drop: p = T_b(y*) / w where T_a(y* + max_drop) / (1 - w) =
    T_b(y*) / w; with no credit (``better = 0`` or ``w = 0``) p = T_a(max_drop) / (1 - w). Capped at 1.
    """
    if not 0 <= worse <= n or not 0 <= better <= n - worse or n < 1:
        raise ValueError(f"need 0 <= worse, better and worse + better <= n >= 1; got {worse}, {better}, {n}")
    if not 0 < max_drop < 1:
        raise ValueError(f"max_drop must lie in (0, 1), got {max_drop!r}")
    if not 0 <= credit_share < 1:
        raise ValueError(f"credit_share must lie in [0, 1), got {credit_share!r}")

    def tail_worse(x: float) -> float:
        return 0.0 if x >= 1 and worse < n else float(bdtr(worse, n, min(x, 1.0)))

    def tail_better(y: float) -> float:
        return float(bdtrc(better - 1, n, y))

    if better == 0 or credit_share == 0:
        return min(1.0, tail_worse(max_drop) / (1 - credit_share))
    def gap(y: float) -> float:
        return tail_worse(y + max_drop) / (1 - credit_share) - tail_better(y) / credit_share

    if gap(0.0) <= 0:
        return 0.0
    y_star = brentq(gap, 0.0, 1.0 - max_drop, xtol=1e-15, rtol=1e-13)
    return min(1.0, tail_better(y_star) / credit_share)


def guaranteed_threshold(
    p: ArrayLike, pair: PairView, scenario: Scenario, grid: ArrayLike | None = None
) -> ThresholdChoice:
    """The most edge-friendly tau of ``grid`` [default: GUARANTEE_GRID] certified by fixed-sequence testing on calibration data.

    The grid is tested from the largest tau (fewest edge queries) down; tau is the last one whose
    p-value is at most 1 - confidence before the first that is not. When even the largest is not
    rejected, tau = ALL_CLOUD_TAU (every query to the cloud, drop 0). ``pvalues`` and ``rcs_by_tau``
    follow ``grid``'s order; ``pvalues`` is NaN where the sequence stopped before testing that tau.
    ``metrics`` add the calibration ``quality_drop`` and ``drop_pvalue``.
    """
    if scenario.max_quality_drop is None or scenario.confidence is None:
        raise ValueError(f"scenario {scenario.name!r} has no quality guarantee")
    taus = np.asarray(GUARANTEE_GRID if grid is None else grid, dtype=np.float64)
    if taus.ndim != 1 or len(taus) == 0:
        raise ValueError("the threshold grid must be a non-empty vector")
    p = check_probabilities(p, len(pair))
    decisions = decisions_at(p, taus)
    worse, better = drop_counts(decisions, pair, scenario.mes)
    order = np.argsort(-taus, kind="stable")
    pvalues = np.full(len(taus), math.nan)
    level, rejected = 1 - scenario.confidence, 0
    for index in order:
        pvalues[index] = drop_pvalue(int(worse[index]), int(better[index]), len(pair), scenario.max_quality_drop)
        if pvalues[index] > level:
            break
        rejected += 1
    tau = float(taus[order[rejected - 1]]) if rejected else ALL_CLOUD_TAU
    chosen = choice_at(p, pair, scenario, tau)
    metrics = {
        **chosen.metrics,
        "quality_drop": quality_drop(p >= tau, pair, scenario.mes),
        "drop_pvalue": float(pvalues[order[rejected - 1]]) if rejected else math.nan,
    }
    rcs = np.atleast_1d(evaluate_decisions(decisions, pair, None, scenario)["rcs"])
    return ThresholdChoice(tau, chosen.rcs, metrics, taus, rcs, pvalues)


def certified(tau: float) -> bool:
    """Whether a guaranteed scenario's ``tau`` routes anything to the edge (False: nothing was certified)."""
    return tau < ALL_CLOUD_TAU
