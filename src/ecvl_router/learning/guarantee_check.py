"""Checking the quality guarantee on fresh data: repeated calibration/test splits of out-of-fold predictions.

A router is fitted out of fold once (every query's probability comes from a router that did not see
it); each repetition then splits the queries at random into a calibration and a test part, chooses tau
on the calibration part and measures the realised quality drop and edge share on the test part. Next
to the guaranteed tau it runs three thresholds without a promise: ``plug-in`` (the most edge-friendly
tau whose calibration drop is at most max_quality_drop), ``matched`` (the tau that sends the guaranteed
policy's mean edge share to the edge) and ``rcs`` (the RCS-maximising tau of a reference scenario).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.learning.crossval import fold_strata
from ecvl_router.data.rsd import RSD, PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.crossval import inner_folds
from ecvl_router.learning.training_set import Targets, take_targets
from ecvl_router.learning.risk_control import GUARANTEE_GRID, guaranteed_threshold, quality_drop
from ecvl_router.routers import create_router, router_class
from ecvl_router.routers.base import Router
from ecvl_router.learning.routing_task import build_task, score_targets
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import search_threshold
from ecvl_router.learning.thresholds import ALL_CLOUD_TAU, threshold_for_edge_share

POLICIES = ("guaranteed", "plug-in", "matched", "rcs")
Progress = Callable[[int, int], None]


def out_of_fold_probabilities(
    make_router: Callable[[int], Router],
    X: QueryFeatures,
    targets: Targets,
    labels: np.ndarray,
    sources: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> np.ndarray:
    """P(edge competent) of every query from a router (``make_router(seed)``) trained on the other folds.

    ``targets`` is what the router learns from (the 0/1 ``labels``, or every model's scores); the folds are
    stratified on ``sources`` and ``labels``.
    """
    labels = np.asarray(labels)
    p = np.zeros(len(X))
    for index, (fit_rows, held_rows) in enumerate(inner_folds(fold_strata(sources, labels, folds), folds, seed)):
        router = make_router(seed + index).fit(X.take(fit_rows), take_targets(targets, fit_rows))
        p[held_rows] = router.predict_proba(X.take(held_rows))
        if progress is not None:
            progress(index + 1, folds)
    return p


@dataclass(frozen=True)
class GuaranteeCheck:
    """A check on one pair: its queries, their out-of-fold probabilities, one row per repetition and the summary."""

    pair: PairView
    p: np.ndarray
    rows: pd.DataFrame
    summary: pd.DataFrame


def run_guarantee_check(
    rsd: RSD,
    features: QueryFeatures,
    *,
    edge: str,
    cloud: str,
    mes: float,
    router: str,
    max_drops: Sequence[float],
    confidences: Sequence[float],
    reference: Scenario,
    router_params: dict[str, Any] | None = None,
    repetitions: int = 200,
    calibration_share: float = 0.5,
    folds: int = 5,
    seed: int = 0,
    fit_progress: Progress | None = None,
    check_progress: Progress | None = None,
) -> GuaranteeCheck:
    """Fit ``router`` out of fold on the (edge, cloud) pair of ``rsd`` once, then ``check_guarantee`` on its probabilities.

    ``features`` must cover the pair's items. A router that learns every model's scores gets them.
    """
    task = build_task(rsd, edge, cloud, mes=mes, seed=seed)
    targets = score_targets(rsd, task) if router_class(router).learns_scores else task.labels
    p = out_of_fold_probabilities(
        lambda s: create_router(router, random_state=s, **(router_params or {})), features.select(task.pair.item_ids),
        targets, task.labels, task.pair.sources, folds=folds, seed=seed, progress=fit_progress,
    )
    rows = check_guarantee(p, task.pair, mes=mes, max_drops=max_drops, confidences=confidences, reference=reference,
                           repetitions=repetitions, calibration_share=calibration_share, seed=seed, progress=check_progress)
    return GuaranteeCheck(task.pair, p, rows, summarise(rows))


def check_guarantee(
    p: np.ndarray,
    pair: PairView,
    *,
    mes: float,
    max_drops: Sequence[float],
    confidences: Sequence[float],
    reference: Scenario,
    repetitions: int = 200,
    calibration_share: float = 0.5,
    seed: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per repetition, max_quality_drop, confidence and policy: tau, test edge share, test drop, violated.

    ``reference`` supplies the RCS weights of the ``rcs`` policy (its MES is replaced by ``mes``).
    """
    if not 0 < calibration_share < 1:
        raise ValueError(f"calibration_share must lie in (0, 1), got {calibration_share!r}")
    rng = np.random.default_rng(seed)
    n_cal = int(round(calibration_share * len(pair)))
    reference = reference.with_mes(mes)
    splits = [rng.permutation(len(pair)) for _ in range(repetitions)]
    calibration = [(p[order[:n_cal]], pair.take(order[:n_cal])) for order in splits]
    tests = [(p[order[n_cal:]], pair.take(order[n_cal:])) for order in splits]
    rcs_taus = [search_threshold(p_cal, pair_cal, reference).tau for p_cal, pair_cal in calibration]
    settings = [(delta, confidence) for delta in max_drops for confidence in confidences]
    rows: list[dict[str, object]] = []
    for done, (delta, confidence) in enumerate(settings, start=1):
        scenario = Scenario(name="guarantee", mes=mes, max_quality_drop=delta, confidence=confidence)
        taus = {
            "guaranteed": [guaranteed_threshold(p_cal, pair_cal, scenario).tau for p_cal, pair_cal in calibration],
            "plug-in": [_plug_in_tau(p_cal, pair_cal, mes, delta) for p_cal, pair_cal in calibration],
            "rcs": rcs_taus,
        }
        share = np.mean([np.mean(p_test >= tau) for (p_test, _), tau in zip(tests, taus["guaranteed"])])
        taus["matched"] = [threshold_for_edge_share(p_cal, share) for p_cal, _ in calibration]
        for policy in POLICIES:
            for repetition, ((p_test, pair_test), tau) in enumerate(zip(tests, taus[policy])):
                to_edge = p_test >= tau
                drop = quality_drop(to_edge, pair_test, mes)
                rows.append({
                    "max_quality_drop": delta, "confidence": confidence, "policy": policy,
                    "repetition": repetition, "tau": tau, "edge_share": float(to_edge.mean()),
                    "drop": drop, "violated": drop > delta,
                })
        if progress is not None:
            progress(done, len(settings))
    return pd.DataFrame(rows)


def _plug_in_tau(p: np.ndarray, pair: PairView, mes: float, max_drop: float) -> float:
    """The smallest tau of GUARANTEE_GRID whose calibration drop is at most ``max_drop`` (no confidence margin)."""
    drops = quality_drop(p[None, :] >= GUARANTEE_GRID[:, None], pair, mes)
    allowed = GUARANTEE_GRID[drops <= max_drop]
    return float(allowed.min()) if len(allowed) else ALL_CLOUD_TAU


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per max_quality_drop, confidence and policy: edge share, drop quantiles, violation rate and its bound.

    ``violation_se`` is the Monte-Carlo standard error at the nominal rate 1 - confidence;
    ``within_bound`` says whether the violation rate is at most 1 - confidence + 2 such errors.
    """
    grouped = rows.groupby(["max_quality_drop", "confidence", "policy"], sort=False)
    summary = grouped.agg(
        repetitions=("drop", "size"),
        edge_share=("edge_share", "mean"),
        drop_mean=("drop", "mean"),
        drop_q50=("drop", "median"),
        drop_q90=("drop", lambda d: d.quantile(0.9)),
        drop_max=("drop", "max"),
        violation_rate=("violated", "mean"),
        all_cloud=("tau", lambda t: float(np.mean(np.asarray(t) >= ALL_CLOUD_TAU))),
    ).reset_index()
    nominal = 1 - summary["confidence"]
    summary["violation_se"] = np.sqrt(nominal * summary["confidence"] / summary["repetitions"])
    summary["within_bound"] = summary["violation_rate"] <= nominal + 2 * summary["violation_se"] + 1e-12
    return summary


def guarantee_markdown(summary: pd.DataFrame, *, title: str, context: Sequence[str]) -> str:
    """The check as Markdown: context lines, then one table per confidence."""
    lines = [f"# {title}", "", *[f"- {line}" for line in context], ""]
    columns = ["max_quality_drop", "policy", "edge_share", "drop_mean", "drop_q90", "drop_max",
               "violation_rate", "violation_se", "all_cloud", "within_bound"]
    for confidence, table in summary.groupby("confidence", sort=True):
        lines += [f"## confidence {confidence:g} (allowed violation rate {1 - confidence:.2f})", "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for _, row in table.iterrows():
            cells = [_cell(row[column]) for column in columns]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if not math.isnan(value) else "–"
    return str(value)


def guarantee_figure(summary: pd.DataFrame, path: Path) -> Path:
    """Edge share (left) and realised violation rate (right, with the allowed 1 - confidence) of the guaranteed tau against max_quality_drop."""
    from ecvl_router.report.figures import pyplot, save_figure

    plt = pyplot()
    figure, (shares, violations) = plt.subplots(1, 2, figsize=(10, 4))
    guaranteed = summary[summary["policy"] == "guaranteed"]
    for confidence, line in guaranteed.groupby("confidence", sort=True):
        line = line.sort_values("max_quality_drop")
        drawn = shares.plot(line["max_quality_drop"], line["edge_share"], marker="o", label=f"confidence {confidence:g}")[0]
        violations.errorbar(line["max_quality_drop"], line["violation_rate"], yerr=2 * line["violation_se"], marker="o",
                            capsize=3, color=drawn.get_color(), label=f"confidence {confidence:g}")
        violations.axhline(1 - confidence, color=drawn.get_color(), linestyle="--", linewidth=1)
    shares.set_ylabel("edge share on test splits (mean)")
    violations.set_ylabel("violation rate (dashed: allowed 1 - confidence)")
    for axis in (shares, violations):
        axis.set_xlabel("max_quality_drop (APSP against all-at-large)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Guaranteed tau on fresh data (error bars: 2 Monte-Carlo SE at the allowed rate)")
    figure.tight_layout()
    return save_figure(figure, path)
