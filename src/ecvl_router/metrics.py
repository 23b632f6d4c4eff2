"""Routing metrics (paper section 3.2 and Table 4), vectorised over queries and, optionally, decision vectors.

Every function takes ``to_edge`` as a boolean array of shape (n,) — one decision per query — or (t, n) —
t decision vectors, e.g. one per threshold — and returns scalars or arrays of shape (t,) accordingly.
Definitions are in docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ecvl_router.scenarios import Scenario


def _routed(to_edge: np.ndarray, edge: ArrayLike, cloud: ArrayLike) -> np.ndarray:
    return np.where(to_edge, np.asarray(edge, dtype=np.float64), np.asarray(cloud, dtype=np.float64))


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if np.ndim(value) == 0 else value


def routing_metrics(
    to_edge: ArrayLike,
    score_edge: ArrayLike,
    score_cloud: ArrayLike,
    latency_edge: ArrayLike,
    latency_cloud: ArrayLike,
    scenario: Scenario,
    labels: ArrayLike | None = None,
    *,
    tokens_edge: ArrayLike | None = None,
    tokens_cloud: ArrayLike | None = None,
) -> dict[str, Any]:
    """All routing metrics of one scenario for one decision vector (or a stack of them).

    Keys: ``apsp`` (Eq. 4), ``ca`` (Eq. 5), ``ail`` (Eq. 6, seconds), ``rcs`` (Eq. 7 with the scenario's
    weights), ``mean_score`` (mean score of the routed answers), ``pgr`` (performance gap recovered, on
    mean score, against all-at-small and all-at-large), ``time_saving`` (seconds saved against
    all-at-large, summed over queries), ``time_saving_share``, ``n``; with ``labels``: ``accuracy``;
    with both token arrays: ``token_saving`` (output tokens saved against all-at-large) and
    ``token_saving_share``. PGR is NaN when both models have the same mean score.
    """
    decisions, score_edge, score_cloud = _checked(to_edge, score_edge, score_cloud)
    routed_score = _routed(decisions, score_edge, score_cloud)
    routed_latency = _routed(decisions, latency_edge, latency_cloud)
    apsp = (routed_score >= scenario.mes).mean(axis=-1)
    ca = decisions.mean(axis=-1)
    ail = routed_latency.mean(axis=-1)
    mean_score = routed_score.mean(axis=-1)
    result: dict[str, Any] = {
        "apsp": apsp,
        "ca": ca,
        "ail": ail,
        "rcs": scenario.alpha * apsp + scenario.beta * ca - scenario.gamma * ail,
        "mean_score": mean_score,
        "pgr": _gap_recovered(mean_score, score_edge, score_cloud),
    }
    result["time_saving"], result["time_saving_share"] = _saving(routed_latency, latency_cloud)
    if labels is not None:
        result["accuracy"] = (decisions == np.asarray(labels).astype(bool)).mean(axis=-1)
    if tokens_edge is not None and tokens_cloud is not None:
        result["token_saving"], result["token_saving_share"] = _saving(_routed(decisions, tokens_edge, tokens_cloud), tokens_cloud)
    result = {key: _scalar_or_array(np.asarray(value)) for key, value in result.items()}
    result["n"] = int(score_edge.shape[0])
    return result


def _checked(to_edge: ArrayLike, score_edge: ArrayLike, score_cloud: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decisions and both score arrays as arrays, their numbers of queries checked to agree."""
    decisions = np.asarray(to_edge, dtype=bool)
    edge = np.asarray(score_edge, dtype=np.float64)
    cloud = np.asarray(score_cloud, dtype=np.float64)
    n = edge.shape[0]
    if decisions.shape[-1] != n or cloud.shape != (n,):
        raise ValueError(
            f"to_edge has {decisions.shape[-1]} queries per decision vector, scores have "
            f"{n} (edge) and {cloud.shape[0]} (cloud)"
        )
    if n == 0:
        raise ValueError("routing_metrics needs at least one query")
    return decisions, edge, cloud


def _gap_recovered(mean_score: np.ndarray, score_edge: np.ndarray, score_cloud: np.ndarray) -> np.ndarray:
    """PGR: the share of the all-small to all-large gap in mean score that the routing recovers (NaN: no gap)."""
    gap = score_cloud.mean() - score_edge.mean()
    return (mean_score - score_edge.mean()) / gap if gap != 0 else np.full_like(mean_score, np.nan)


def _saving(routed: np.ndarray, cloud: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """What routing saves against all-at-large, summed over queries, and that as a share of all-at-large's total."""
    total = np.sum(np.asarray(cloud, dtype=np.float64))
    saving = total - routed.sum(axis=-1)
    return saving, saving / total if total > 0 else np.full_like(saving, np.nan)


def decisions_at(probabilities: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """Decision vectors (t, n): route to the edge where p >= tau (Eq. 3), one row per threshold."""
    p = np.asarray(probabilities, dtype=np.float64)
    taus = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    return p[None, :] >= taus[:, None]
