"""Evaluating decisions on a routing task, next to the reference policies every report shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecvl_router.data.rsd import PairView
from ecvl_router.metrics import routing_metrics
from ecvl_router.scenarios import Scenario

REFERENCE_POLICIES = ("all-large", "all-small", "oracle")
"""Always cloud, always edge, and the upper bound that routes by the true label."""


def evaluate_decisions(to_edge: np.ndarray, view: PairView, labels: np.ndarray | None, scenario: Scenario) -> dict[str, Any]:
    """All routing metrics of ``to_edge`` on the queries of ``view`` (tokens included when known; accuracy with ``labels``)."""
    return routing_metrics(
        to_edge,
        view.score_edge,
        view.score_cloud,
        view.latency_edge,
        view.latency_cloud,
        scenario,
        labels=labels,
        tokens_edge=view.tokens_edge,
        tokens_cloud=view.tokens_cloud,
    )


def reference_decisions(policy: str, labels: np.ndarray) -> np.ndarray:
    """Decisions of a reference policy: ``all-large``, ``all-small`` or ``oracle`` (edge exactly when competent)."""
    if policy == "all-large":
        return np.zeros(len(labels), dtype=bool)
    if policy == "all-small":
        return np.ones(len(labels), dtype=bool)
    if policy == "oracle":
        return np.asarray(labels).astype(bool)
    raise ValueError(f"unknown reference policy {policy!r}; expected one of {', '.join(REFERENCE_POLICIES)}")
