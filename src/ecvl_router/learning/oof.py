"""Out-of-fold training: small-data discipline for any learned router.

Instead of one 80/20 split, whose ~20 % validation part decides both the epoch and τ:

1. the training data is cut into ``folds`` stratified parts; one router per part is trained on the
   others for its fixed schedule (no best-epoch choice), and predicts the part it did not see;
2. the out-of-fold predictions of *all* training queries optionally fit a calibration map
   (Platt or isotonic) and then choose τ per scenario;
3. the router kept is the calibrated mean of the fold routers (an ensemble, no refit);
4. where the router does not beat the better trivial policy (all-at-large or all-at-small) by more
   than ``fallback_z`` standard errors of the paired per-query difference, the scenario falls back to
   that trivial policy, and the bundle says so. The comparison uses honest decisions: each inner part
   is decided with a calibration map and τ fitted on the other parts only (τ chosen and scored on the
   same predictions would let a lucky τ pass the test on pure noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ecvl_router.learning.crossval import inner_folds
from ecvl_router.data.rsd import PairView
from ecvl_router.routers.base import Router
from ecvl_router.routers.ensemble import Calibration, CalibrationKind, EnsembleRouter
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training_set import TrainingSet, take_targets
from ecvl_router.learning.training import EpochResult, ScenarioChoice, TrainedRouter, mes_thresholds, search_threshold
from ecvl_router.learning.thresholds import ALL_CLOUD_TAU, ThresholdChoice, choice_at

INNER_FOLDS = 5
"""Inner folds of the out-of-fold recipe."""

Progress = Callable[[int, int], None]


def per_query_rcs(to_edge: np.ndarray, pair: PairView, scenario: Scenario) -> np.ndarray:
    """Each query's contribution to RCS: ``Scenario.rcs`` of [routed score ≥ MES], [edge] and the routed latency."""
    score = np.where(to_edge, pair.score_edge, pair.score_cloud)
    return scenario.rcs(score >= scenario.mes, to_edge, np.where(to_edge, pair.latency_edge, pair.latency_cloud))


def fallback_choice(to_edge: np.ndarray, pair: PairView, scenario: Scenario, *, z: float) -> str | None:
    """The better trivial policy, unless decisions ``to_edge`` beat it by more than ``z`` standard errors (then None).

    The standard error is that of the mean paired per-query RCS difference. ``to_edge`` must be honest
    held-out decisions (``cross_fitted_decisions``), not ones whose τ was chosen on the same queries.
    """
    trivial = {name: per_query_rcs(np.full(len(pair), name == "all-small"), pair, scenario) for name in ("all-small", "all-large")}
    best = max(trivial, key=lambda name: trivial[name].mean())
    gain = per_query_rcs(np.asarray(to_edge, dtype=bool), pair, scenario) - trivial[best]
    standard_error = gain.std(ddof=1) / math.sqrt(len(gain)) if len(gain) > 1 else math.inf
    return None if gain.mean() > z * standard_error else best


def trivial_tau(policy: str) -> float:
    """The threshold that sends every query to the edge (``all-small``) or to the cloud (``all-large``)."""
    return 0.0 if policy == "all-small" else ALL_CLOUD_TAU


def cross_fitted_decisions(
    p_oof: np.ndarray,
    labels: np.ndarray,
    pair: PairView,
    scenario: Scenario,
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    calibration: CalibrationKind,
) -> np.ndarray:
    """Held-out decisions: each part is decided with a calibration map and τ fitted on the other parts only."""
    to_edge = np.zeros(len(p_oof), dtype=bool)
    for others, held in parts:
        calibrator = Calibration.fit(calibration, p_oof[others], labels[others])
        tau = search_threshold(np.clip(calibrator(p_oof[others]), 0.0, 1.0), pair.take(others), scenario).tau
        to_edge[held] = np.clip(calibrator(p_oof[held]), 0.0, 1.0) >= tau
    return to_edge


def train_out_of_fold(
    make_router: Callable[[int], Router],
    data: TrainingSet,
    scenarios: Sequence[Scenario],
    *,
    folds: int = INNER_FOLDS,
    seed: int = 0,
    calibration: CalibrationKind = "isotonic",
    fallback_z: float | None = 1.0,
    progress: Progress | None = None,
) -> TrainedRouter:
    """Train ``folds`` routers (``make_router(seed)``) out of fold and return their calibrated ensemble with τ per scenario.

    The inner folds are stratified by ``data.strata`` and keep each of ``data.groups`` on one side.
    """
    X, y, labels, pair = data.features, data.targets, np.asarray(data.labels), data.pair
    p_oof = np.zeros(len(X))
    members: list[Router] = []
    parts = inner_folds(data.strata, folds, seed, data.groups)
    by_level: dict[float, np.ndarray] = {}
    for index, (fit_rows, held_rows) in enumerate(parts):
        member = make_router(seed + index).fit(X.take(fit_rows), take_targets(y, fit_rows))
        X_held = X.take(held_rows)
        p_oof[held_rows] = member.predict_proba(X_held)
        if member.learns_scores:
            for level, p_level in member.competence_by_level(X_held, edge=pair.edge, cloud=pair.cloud).items():
                by_level.setdefault(level, np.zeros(len(X)))[held_rows] = p_level
        members.append(member)
        if progress is not None:
            progress(index + 1, folds)
    calibrator = Calibration.fit(calibration, p_oof, labels)
    p_cal = np.clip(calibrator(p_oof), 0.0, 1.0)
    choices: dict[str, ScenarioChoice] = {}
    for scenario in scenarios:
        threshold = search_threshold(p_cal, pair, scenario)
        fallback = None
        if fallback_z is not None and scenario.cloud_allowed and not scenario.guaranteed:
            honest = cross_fitted_decisions(p_oof, labels, pair, scenario, parts, calibration)
            fallback = fallback_choice(honest, pair, scenario, z=fallback_z)
            if fallback is not None:
                kept = choice_at(p_cal, pair, scenario, trivial_tau(fallback))
                threshold = ThresholdChoice(kept.tau, kept.rcs, kept.metrics, threshold.grid, threshold.rcs_by_tau)
        tau_by_mes = mes_thresholds(by_level, pair, scenario) if by_level else None
        choices[scenario.name] = ScenarioChoice(scenario, 0, threshold, fallback=fallback, tau_by_mes=tau_by_mes)
    ensemble = EnsembleRouter.of(members, calibrator, random_state=seed)
    history = {name: [EpochResult(0, choice.tau, choice.rcs)] for name, choice in choices.items()}
    return TrainedRouter(ensemble, choices, {0: ensemble.get_state()}, history, recipe=_recipe(folds, calibration, fallback_z))


def _recipe(folds: int, calibration: str, fallback_z: float | None) -> dict[str, Any]:
    return {"name": "oof", "folds": folds, "calibration": calibration, "fallback_z": fallback_z}
