"""Cost–quality curves over test folds: means with 95 % intervals of the curve share, of the edge share kept at
each quality target and of the curve itself at every edge share, next to random routing and the oracle.

Input rows are fold rows (``router_cv.fold_row``) or any rows with the same columns: ``repeat``, ``fold``,
``scenario``, ``mes``, ``policy`` and, for a policy that ranks queries, ``curve_entries`` of its curves.
Intervals are the corrected resampled t intervals of ``crossval``; with a single fold they are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.learning.crossval import Interval, corrected_interval
from ecvl_router.learning.curves import GRID, MEASURES, TARGETS, CostQuality, target_key

POINTS = "curve_points"
"""Column of a row holding its ranking's quality on ``curves.GRID``, per measure."""
RANDOM = "random-line"
"""The reference row of random routing: the straight line from all-at-cloud to all-at-edge."""
REFERENCES = ("oracle", "bayes")
"""Policies with curves that are yardsticks, not routers: never the best router of a comparison."""


@dataclass(frozen=True)
class CurveSummary:
    """``shares``: one row per (scenario, measure, policy) with the curve share, the edge share at each target and
    the paired curve-share gap to the best router; ``points``: one row per (scenario, measure, policy, edge share)
    with the mean quality and its interval."""

    shares: pd.DataFrame
    points: pd.DataFrame


def curve_entries(curve: CostQuality) -> dict[str, Any]:
    """The columns a row gets for a ranking's curves: ``CostQuality.columns`` and ``POINTS``."""
    return {**curve.columns(), POINTS: curve.points()}


def summarise_curves(rows: pd.DataFrame, test_share: float, targets: Sequence[float] = TARGETS) -> CurveSummary:
    """Per scenario and measure: every ranking policy's curve share and edge shares with intervals, and random routing's.

    The best router is the one with the highest mean curve share among the policies that are not references;
    the gap is the paired per-fold difference to it. ``test_share`` is n_test / n_train of a fold.
    """
    shares, points = [], []
    ranked = rows[rows[POINTS].notna()] if POINTS in rows else rows.iloc[:0]
    for scenario, block in ranked.groupby("scenario", sort=False):
        by_policy = {policy: part.sort_values(["repeat", "fold"]) for policy, part in block.groupby("policy", sort=False)}
        first = next(iter(by_policy.values()))  # every ranking of a fold shares random routing's line
        for measure in MEASURES:
            column = f"curve_share_{measure}"
            routers = [p for p in by_policy if p not in REFERENCES]
            best = max(routers, key=lambda p: _mean(by_policy[p][column])) if routers else None
            head = {"scenario": scenario, "mes": first["mes"].iloc[0], "measure": measure}
            random = {**head, "best_router": best, "policy": RANDOM, "folds": len(first),
                      **_interval_columns("curve_share", Interval(0.0, 0.0, 0.0))}
            for target in targets:
                key = target_key(target)
                random.update(_interval_columns(key, _interval(first[f"random_{key}_{measure}"], test_share, (0.0, 1.0))))
            for policy, part in by_policy.items():
                entry = _policy_entry(part, measure, targets, test_share, random)
                if best is not None:
                    gap = part[column].to_numpy() - by_policy[best][column].to_numpy()
                    entry.update(_interval_columns("gap", _interval(gap, test_share)))
                shares.append({**head, "best_router": best, "policy": policy, "folds": len(part), **entry})
                points += _points(head, policy, np.stack([cell[measure] for cell in part[POINTS]]), test_share)
            shares.append(random)
            ends = np.stack([cell[measure][[0, -1]] for cell in first[POINTS]])
            points += _points(head, RANDOM, ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * GRID[None, :], test_share)
    return CurveSummary(pd.DataFrame(shares), pd.DataFrame(points))


def _policy_entry(
    part: pd.DataFrame, measure: str, targets: Sequence[float], test_share: float, random: dict[str, Any]
) -> dict[str, Any]:
    """One policy's curve share and edge shares over its fold rows ``part``, each edge share also as a ratio to random's."""
    entry = _interval_columns("curve_share", _interval(part[f"curve_share_{measure}"], test_share, (-1.0, 1.0)))
    for target in targets:
        key = target_key(target)
        entry.update(_interval_columns(key, _interval(part[f"{key}_{measure}"], test_share, (0.0, 1.0))))
        entry[f"{key}_vs_random"] = _ratio(entry[key], random[key])
    return entry


def _points(head: dict[str, Any], policy: str, curves: np.ndarray, test_share: float) -> list[dict[str, Any]]:
    """Rows of the mean curve and its interval at each edge share of ``GRID`` (``curves``: folds × grid)."""
    rows = []
    for share, values in zip(GRID, curves.T):
        interval = _interval(values, test_share)
        rows.append({**head, "policy": policy, "share": float(share), "quality": interval.mean,
                     "low": interval.low, "high": interval.high})
    return rows


def _interval(values: Any, test_share: float, bounds: tuple[float, float] | None = None) -> Interval:
    """The corrected interval of the finite ``values`` (NaN bounds from fewer than two, all NaN from none), clipped to ``bounds``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return Interval(math.nan, math.nan, math.nan)
    interval = corrected_interval(x, test_share) if len(x) > 1 else Interval(float(x[0]), math.nan, math.nan)
    if bounds is None or math.isnan(interval.low):
        return interval
    return Interval(interval.mean, max(interval.low, bounds[0]), min(interval.high, bounds[1]))


def _interval_columns(key: str, interval: Interval) -> dict[str, Any]:
    return {key: interval.mean, f"{key}_low": interval.low, f"{key}_high": interval.high}


def _mean(values: pd.Series) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else -math.inf


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else math.nan
