"""Drift of the router's inputs: how far the p of live queries has moved from the p it was trained to expect.

A bundle records, per scenario, the histogram of p on held-out queries of its own dataset (the test part,
or validation when there is none) over ``P_BINS``. Live p is compared with it by the population stability
index, PSI = Σ (a − e) · ln(a / e) over the bins' shares a (live) and e (reference), each share floored at
``PSI_FLOOR`` so that an empty bin does not make it infinite. Conventional reading: below 0.1 stable,
0.1–0.25 a moderate shift worth watching, above 0.25 a shift that calls for retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.training import TrainedRouter

P_BINS: np.ndarray = np.round(np.linspace(0.0, 1.0, 21), 2)
"""Bin edges of p: 20 bins of width 0.05 (the last one closed)."""
PSI_FLOOR = 1e-4
PSI_WATCH = 0.1
PSI_RETRAIN = 0.25
EDGE_SHARE_TOLERANCE = 0.10
"""An edge share this far (absolute) from the one seen on validation also calls for retraining."""


def p_histogram(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts of ``p`` over ``P_BINS`` (values outside [0, 1] are clipped in)."""
    values = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return np.histogram(values, bins=P_BINS)[0]


def population_stability_index(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float:
    """PSI between two histograms over the same bins (counts or shares); NaN when either is empty."""
    expected, actual = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"histograms over different bins: {expected.shape} and {actual.shape}")
    if expected.sum() <= 0 or actual.sum() <= 0:
        return float("nan")
    e = np.maximum(expected / expected.sum(), PSI_FLOOR)
    a = np.maximum(actual / actual.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_level(psi: float) -> str:
    """``stable``, ``watch`` or ``retrain`` by the conventional PSI thresholds (``unknown`` for NaN)."""
    if np.isnan(psi):
        return "unknown"
    return "stable" if psi < PSI_WATCH else "watch" if psi < PSI_RETRAIN else "retrain"


def reference_histograms(trained: TrainedRouter, features: QueryFeatures, part: str) -> dict[str, dict[str, Any]]:
    """Per scenario of ``trained``: the histogram of p on ``features`` (held-out queries), for a bundle's manifest."""
    return {
        name: {"part": part, "n": len(features), "bins": P_BINS.tolist(),
               "counts": p_histogram(trained.predict_proba(features, name)).tolist()}
        for name in trained.scenario_names
    }
