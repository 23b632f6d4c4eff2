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
    decisions = np.asarray(to_edge, dtype=bool)
    score_edge = np.asarray(score_edge, dtype=np.float64)
    score_cloud = np.asarray(score_cloud, dtype=np.float64)
    n = score_edge.shape[0]
    if decisions.shape[-1] != n or score_cloud.shape != (n,):
        raise ValueError(
            f"to_edge has {decisions.shape[-1]} queries per decision vector, scores have "
            f"{n} (edge) and {score_cloud.shape[0]} (cloud)"
        )
    if n == 0:
        raise ValueError("routing_metrics needs at least one query")
    routed_score = _routed(decisions, score_edge, score_cloud)
    routed_latency = _routed(decisions, latency_edge, latency_cloud)
    apsp = (routed_score >= scenario.mes).mean(axis=-1)
    ca = decisions.mean(axis=-1)
    ail = routed_latency.mean(axis=-1)
    mean_score = routed_score.mean(axis=-1)
    gap = score_cloud.mean() - score_edge.mean()
    pgr = (mean_score - score_edge.mean()) / gap if gap != 0 else np.full_like(mean_score, np.nan)
    time_saving = np.sum(latency_cloud) - routed_latency.sum(axis=-1)
    result: dict[str, Any] = {
        "apsp": apsp,
        "ca": ca,
        "ail": ail,
        "rcs": scenario.alpha * apsp + scenario.beta * ca - scenario.gamma * ail,
        "mean_score": mean_score,
        "pgr": pgr,
        "time_saving": time_saving,
        "time_saving_share": time_saving / np.sum(latency_cloud) if np.sum(latency_cloud) > 0 else np.nan * ca,
    }
    if labels is not None:
        truth = np.asarray(labels).astype(bool)
        result["accuracy"] = (decisions == truth).mean(axis=-1)
    if tokens_edge is not None and tokens_cloud is not None:
        routed_tokens = _routed(decisions, tokens_edge, tokens_cloud)
        total_cloud = np.sum(np.asarray(tokens_cloud, dtype=np.float64))
        result["token_saving"] = total_cloud - routed_tokens.sum(axis=-1)
        result["token_saving_share"] = result["token_saving"] / total_cloud if total_cloud > 0 else np.nan * ca
    result = {key: _scalar_or_array(np.asarray(value)) for key, value in result.items()}
    result["n"] = int(n)
    return result


def decisions_at(probabilities: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """Decision vectors (t, n): route to the edge where p >= tau (Eq. 3), one row per threshold."""
    p = np.asarray(probabilities, dtype=np.float64)
    taus = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    return p[None, :] >= taus[:, None]
