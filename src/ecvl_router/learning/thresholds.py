"""Thresholds: the paper's tau grid, a threshold's metrics, the RCS grid search and edge-share calibration.

Guaranteed scenarios choose tau by risk control instead (``ecvl_router.learning.risk_control``, which builds
on this module); ``ecvl_router.learning.training.search_threshold`` picks the one a scenario needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ecvl_router.data.rsd import PairView
from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.metrics import decisions_at
from ecvl_router.scenarios import Scenario

THRESHOLD_GRID: np.ndarray = np.round(np.arange(21) * 0.05, 2)
"""The paper's tau grid: 0, 0.05, ..., 1 (exact two-decimal values)."""

ALL_CLOUD_TAU: float = float(np.nextafter(1.0, 2.0))
"""A threshold no probability reaches: every query goes to the cloud."""

_RCS_TIE = 1e-12
"""RCS values this close count as equal when choosing tau (they differ only by rounding)."""


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold and the validation metrics it gives.

    ``grid`` and ``rcs_by_tau`` hold the RCS of every candidate (empty when tau was not searched);
    ``pvalues`` the p-value of "quality drop > max_quality_drop" of every candidate for a guaranteed
    scenario (``ecvl_router.learning.risk_control``), empty otherwise.
    """

    tau: float
    rcs: float
    metrics: dict[str, Any]
    grid: np.ndarray = field(default_factory=lambda: np.empty(0))
    rcs_by_tau: np.ndarray = field(default_factory=lambda: np.empty(0))
    pvalues: np.ndarray = field(default_factory=lambda: np.empty(0))


def check_probabilities(p: ArrayLike, n: int | None = None) -> np.ndarray:
    """``p`` as a float64 vector of probabilities in [0, 1] (of ``n`` queries when given); ValueError otherwise."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"probabilities must be a vector, got shape {p.shape}")
    if n is not None and len(p) != n:
        raise ValueError(f"{len(p)} probabilities for {n} queries")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    return p


def choice_at(p: ArrayLike, pair: PairView, scenario: Scenario, tau: float) -> ThresholdChoice:
    """The metrics of threshold ``tau`` on ``pair`` (no search)."""
    p = check_probabilities(p, len(pair))
    metrics = evaluate_decisions(p >= tau, pair, None, scenario)
    return ThresholdChoice(tau=float(tau), rcs=float(metrics["rcs"]), metrics=metrics)


def rcs_threshold(
    p_val: ArrayLike, pair_val: PairView, scenario: Scenario, grid: ArrayLike | None = None
) -> ThresholdChoice:
    """The tau of ``grid`` [default: THRESHOLD_GRID] with the highest RCS of ``scenario`` on the validation pair.

    Ties (RCS within 1e-12) go to the smallest tau: of equally good thresholds, the one that sends the
    most queries to the edge, also on unseen data. A scenario that forbids the cloud
    (``cloud_allowed=False``) gets tau = 0, which sends every query to the edge; its RCS curve is
    still reported.
    """
    p = check_probabilities(p_val, len(pair_val))
    taus = np.asarray(THRESHOLD_GRID if grid is None else grid, dtype=np.float64)
    if taus.ndim != 1 or len(taus) == 0:
        raise ValueError("the threshold grid must be a non-empty vector")
    rcs = np.atleast_1d(evaluate_decisions(decisions_at(p, taus), pair_val, None, scenario)["rcs"])
    if not scenario.cloud_allowed:
        best = choice_at(p, pair_val, scenario, 0.0)
        return ThresholdChoice(best.tau, best.rcs, best.metrics, taus, rcs)
    tied = np.flatnonzero(rcs >= rcs.max() - _RCS_TIE)
    best = choice_at(p, pair_val, scenario, taus[tied].min())
    return ThresholdChoice(best.tau, best.rcs, best.metrics, taus, rcs)


def threshold_for_edge_share(p_val: ArrayLike, share: float) -> float:
    """tau such that a fraction ``share`` of the validation queries has p >= tau (goes to the edge).

    With k = round(share * n), tau is the k-th largest probability, so exactly k queries go to the edge
    unless others tie with it: tied queries are routed together, and the realised share can exceed
    ``share`` by the size of that tie. ``share = 0`` gives a tau just above the largest probability.
    """
    p = check_probabilities(p_val)
    if len(p) == 0:
        raise ValueError("threshold_for_edge_share needs at least one probability")
    if not 0 <= share <= 1:
        raise ValueError(f"edge share must lie in [0, 1], got {share!r}")
    descending = np.sort(p)[::-1]
    k = int(round(share * len(p)))
    if k == 0:
        return float(np.nextafter(descending[0], math.inf))
    return float(descending[k - 1])
