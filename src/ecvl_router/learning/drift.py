"""Drift of the router's inputs: how far the p of live queries has moved from the p it was trained to expect.

A bundle records, per scenario, the histogram of p on held-out queries of its own dataset (the test part,
or validation when there is none) over ``P_BINS``. Live p is compared with it by the population stability
index, PSI = Σ (a − e) · ln(a / e) over the bins' shares a (live) and e (reference), each share floored at
``PSI_FLOOR`` so that an empty bin does not make it infinite. Conventional reading: below 0.1 stable,
0.1–0.25 a moderate shift worth watching, above 0.25 a shift that calls for retraining.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.training import TrainedRouter

P_BINS: np.ndarray = np.round(np.linspace(0.0, 1.0, 21), 2)
"""Bin edges of p: 20 bins of width 0.05 (the last one closed)."""
PSI_FLOOR = 1e-4
PSI_WATCH = 0.1
PSI_RETRAIN = 0.25
EDGE_SHARE_TOLERANCE = 0.10
"""A live edge share this far (absolute) from the one seen on validation also calls for retraining."""
MIN_QUERIES = 50
"""Fewer live queries with a p than this for a scenario give no verdict (its PSI would be mostly noise)."""


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


def validation_edge_share(manifest: Mapping[str, Any], scenario: str) -> float:
    """The edge share a bundle's validation saw at its τ for ``scenario`` (NaN where its manifest records none)."""
    return float(manifest.get("scenarios", {}).get(scenario, {}).get("val_metrics", {}).get("ca", float("nan")))


def scenario_drift(live: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """Per scenario of the bundle: live queries, PSI of their p against the bundle's reference, and edge shares.

    ``live`` holds one row per live decision with ``scenario``, ``p`` (NaN for decisions without one, such as a
    conversation's kept route) and ``decision`` (``edge`` or ``cloud``). ``validation_edge_share`` is the share
    the bundle's validation saw at its τ.
    """
    rows = []
    for name in manifest.get("scenarios", {}):
        reference = manifest.get("p_reference", {}).get(name)
        mine = live[live["scenario"] == name]
        p = mine["p"].dropna().to_numpy(dtype=np.float64)
        psi = population_stability_index(reference["counts"], p_histogram(p)) if reference and len(p) else float("nan")
        validation_share = validation_edge_share(manifest, name)
        live_share = float((mine["decision"] == "edge").mean()) if len(mine) else float("nan")
        level = drift_level(psi) if len(p) >= MIN_QUERIES else "too few"
        if level != "too few" and abs(live_share - validation_share) > EDGE_SHARE_TOLERANCE:
            level = "retrain"
        rows.append({"scenario": name, "queries": len(mine), "with_p": len(p), "psi": psi, "live_edge_share": live_share,
                     "validation_edge_share": validation_share, "level": level})
    return pd.DataFrame(rows, columns=["scenario", "queries", "with_p", "psi", "live_edge_share", "validation_edge_share", "level"])


def query_drift(live_questions: Sequence[str], live_has_image: Sequence[bool],
                train_questions: Sequence[str], train_has_image: Sequence[bool]) -> pd.DataFrame:
    """Simple statistics of the queries, live against training: words per question (PSI over deciles) and image share."""
    live_words = np.array([len(str(q).split()) for q in live_questions], dtype=np.float64)
    train_words = np.array([len(str(q).split()) for q in train_questions], dtype=np.float64)
    edges = np.unique(np.quantile(train_words, np.linspace(0, 1, 11))) if len(train_words) else np.array([0.0, 1.0])
    edges[0], edges[-1] = -np.inf, np.inf
    psi = population_stability_index(np.histogram(train_words, edges)[0], np.histogram(live_words, edges)[0])
    return pd.DataFrame([
        {"statistic": "words per question (mean)", "training": float(train_words.mean()) if len(train_words) else float("nan"),
         "live": float(live_words.mean()) if len(live_words) else float("nan"), "psi": psi, "level": drift_level(psi)},
        {"statistic": "share with an image", "training": float(np.mean(train_has_image)) if len(train_has_image) else float("nan"),
         "live": float(np.mean(live_has_image)) if len(live_has_image) else float("nan"), "psi": float("nan"), "level": "–"},
    ])


def retraining_due(scenarios: pd.DataFrame) -> bool:
    """Whether any scenario calls for retraining."""
    return bool((scenarios["level"] == "retrain").any())
