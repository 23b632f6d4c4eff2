"""Cost–quality curves: the quality of routing by p at every edge share, beside random routing and the oracle.

At edge share s the s·n queries with the highest p go to the edge and the others to the cloud; the
quality is the mean over all n queries of the routed answers' values: their scores (measure ``score``)
or 1 where the score reaches the MES and 0 elsewhere (measure ``apsp``). Queries with equal p form one
block, of which a share s sends a random part: the curve is the expected quality, linear across the
block, so a ranking's ties never depend on the order of the rows. Between whole queries the curve is
linear too (the last query goes to the edge with the probability of the fractional part). Every curve
is thus piecewise linear through its knots, and areas and crossings are exact.

Random routing is the straight line from all-at-cloud (s = 0) to all-at-edge (s = 1). The oracle ranks
by the gain itself (edge value − cloud value): for every s it reaches the highest quality any choice of
s·n queries can. docs/evaluation.md ("Cost–quality curves") defines the curve share and the edge share
kept at a quality target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

MEASURES = ("score", "apsp")
"""Quality measures: the mean score of the routed answers, and APSP (the share of routed answers at or above the MES)."""
TARGETS = (0.95, 0.90)
"""Quality targets as shares of all-at-cloud quality."""
GRID = np.linspace(0.0, 1.0, 101)
"""Edge shares at which curves are tabulated, averaged over folds and drawn."""
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Curve:
    """Quality against edge share, piecewise linear through the knots (``shares`` rises from 0 to 1)."""

    shares: np.ndarray
    quality: np.ndarray

    def at(self, shares: ArrayLike) -> np.ndarray:
        """The quality at each of ``shares``."""
        return np.interp(shares, self.shares, self.quality)

    def area_above_random(self) -> float:
        """∫₀¹ (curve − random line) ds: the line joins the curve's own ends, all-at-cloud and all-at-edge."""
        line = self.quality[0] + (self.quality[-1] - self.quality[0]) * self.shares
        return float(np.trapezoid(self.quality - line, self.shares))

    def edge_share_at(self, target: float) -> float:
        """The largest edge share whose quality is at least ``target`` (NaN if none is)."""
        reached = np.flatnonzero(self.quality >= target - TOLERANCE)
        if not len(reached):
            return math.nan
        last = int(reached[-1])
        if last == len(self.quality) - 1:
            return 1.0
        high, low = self.quality[last], self.quality[last + 1]
        width = self.shares[last + 1] - self.shares[last]
        return float(self.shares[last] + width * min(1.0, max(0.0, (high - target) / (high - low))))


def ranking_curve(p: ArrayLike, edge: ArrayLike, cloud: ArrayLike) -> Curve:
    """The curve of routing by ``p`` (highest first) with per-query values ``edge`` and ``cloud``; ties form blocks."""
    p, edge, cloud = _checked(p, edge, cloud)
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    n = len(p)
    ends = np.concatenate([[0], np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, [n]])
    gained = np.concatenate([[0.0], np.cumsum((edge - cloud)[order])])
    return Curve(ends / n, cloud.mean() + gained[ends] / n)


def oracle_curve(edge: ArrayLike, cloud: ArrayLike) -> Curve:
    """The best curve: ranking by the gain ``edge − cloud`` (ties between equal gains change nothing)."""
    edge, cloud = np.asarray(edge, dtype=np.float64), np.asarray(cloud, dtype=np.float64)
    return ranking_curve(edge - cloud, edge, cloud)


def random_curve(edge: ArrayLike, cloud: ArrayLike) -> Curve:
    """Random routing's expected curve: the line from the cloud's mean value to the edge's."""
    return Curve(np.array([0.0, 1.0]), np.array([np.mean(cloud), np.mean(edge)], dtype=np.float64))


def curve_share(curve: Curve, oracle: Curve) -> float:
    """The curve's area above random as a share of the oracle's (1: the oracle, 0: random, < 0: worse); NaN without headroom."""
    best = oracle.area_above_random()
    return curve.area_above_random() / best if best > TOLERANCE else math.nan


def measure_values(measure: str, scores: ArrayLike, mes: float) -> np.ndarray:
    """Per-query values of ``measure``: the scores themselves, or 1.0 where a score reaches ``mes``."""
    scores = np.asarray(scores, dtype=np.float64)
    if measure == "score":
        return scores
    if measure == "apsp":
        return (scores >= mes).astype(np.float64)
    raise ValueError(f"unknown quality measure {measure!r}; expected one of {', '.join(MEASURES)}")


def target_key(target: float) -> str:
    """``edge_95`` for the target 0.95."""
    return f"edge_{round(100 * target)}"


def curve_columns(measure: str, targets: Sequence[float] = TARGETS) -> list[str]:
    """The columns ``CostQuality.columns`` writes for ``measure``."""
    keys = ["curve_share", *(target_key(t) for t in targets), *(f"random_{target_key(t)}" for t in targets)]
    return [f"{key}_{measure}" for key in keys]


@dataclass(frozen=True)
class CostQuality:
    """One ranking's curve per quality measure on one set of queries, with the oracle's and random routing's."""

    ranking: dict[str, Curve]
    oracle: dict[str, Curve]
    random: dict[str, Curve]

    def columns(self, targets: Sequence[float] = TARGETS) -> dict[str, float]:
        """Per measure: the curve share, and the edge share kept at each target (×  all-at-cloud quality), the
        ranking's and random routing's; an edge share is NaN where all-at-cloud quality is not positive."""
        columns: dict[str, float] = {}
        for measure, curve in self.ranking.items():
            values = [curve_share(curve, self.oracle[measure])]
            values += [edge_share_at_quality(curve, t) for t in targets]
            values += [edge_share_at_quality(self.random[measure], t) for t in targets]
            columns.update(zip(curve_columns(measure, targets), values))
        return columns

    def points(self, grid: np.ndarray = GRID) -> dict[str, np.ndarray]:
        """The ranking's quality at the edge shares of ``grid``, per measure."""
        return {measure: curve.at(grid) for measure, curve in self.ranking.items()}


def edge_share_at_quality(curve: Curve, target: float) -> float:
    """The largest edge share at which ``curve`` keeps ``target`` × its all-at-cloud quality (NaN if that is not positive)."""
    cloud = float(curve.quality[0])
    return curve.edge_share_at(target * cloud) if cloud > 0 else math.nan


def cost_quality(p: ArrayLike, score_edge: ArrayLike, score_cloud: ArrayLike, mes: float) -> CostQuality:
    """The curves of routing by ``p`` on queries with these scores, for every measure (APSP at ``mes``)."""
    return _cost_quality(lambda edge, cloud: ranking_curve(p, edge, cloud), score_edge, score_cloud, mes)


def oracle_cost_quality(score_edge: ArrayLike, score_cloud: ArrayLike, mes: float) -> CostQuality:
    """The oracle's curves (its ranking is each measure's own gain), as a ``CostQuality`` of their own."""
    return _cost_quality(oracle_curve, score_edge, score_cloud, mes)


def _cost_quality(
    curve_of: Callable[[np.ndarray, np.ndarray], Curve], score_edge: ArrayLike, score_cloud: ArrayLike, mes: float
) -> CostQuality:
    ranking, oracle, random = {}, {}, {}
    for measure in MEASURES:
        edge, cloud = measure_values(measure, score_edge, mes), measure_values(measure, score_cloud, mes)
        ranking[measure] = curve_of(edge, cloud)
        oracle[measure] = oracle_curve(edge, cloud)
        random[measure] = random_curve(edge, cloud)
    return CostQuality(ranking, oracle, random)


def _checked(p: ArrayLike, edge: ArrayLike, cloud: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays as float arrays of one length (at least one query, finite p)."""
    p, edge, cloud = (np.asarray(a, dtype=np.float64) for a in (p, edge, cloud))
    if not (p.ndim == edge.ndim == cloud.ndim == 1) or not (len(p) == len(edge) == len(cloud)):
        raise ValueError(f"p, edge and cloud values must be 1-d of one length, got shapes {p.shape}, {edge.shape}, {cloud.shape}")
    if len(p) == 0:
        raise ValueError("a cost–quality curve needs at least one query")
    if not np.isfinite(p).all():
        raise ValueError(f"p must be finite; row {int(np.flatnonzero(~np.isfinite(p))[0])} is {p[~np.isfinite(p)][0]}")
    return p, edge, cloud
