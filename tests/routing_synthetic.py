"""A small synthetic routing problem for router, training and bundle tests.

Each query's edge score rises with a hidden signal that is a sum of one text, one image and one
statistics feature (the statistics on a raw, unscaled scale); the cloud always scores 8. Labels come
from the paper's MES rule at MES 6, so the edge is competent exactly where its score reaches 6.
"""

from __future__ import annotations

import numpy as np

from ecvl_router.data.rsd import PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import competence_labels

D_TEXT, D_IMAGE, D_STATS = 16, 24, 4


def synthetic_problem(n: int, *, seed: int, no_image_share: float = 0.2) -> tuple[QueryFeatures, np.ndarray, PairView]:
    """(features, labels, pair view) of ``n`` queries; about ``no_image_share`` of them have no image."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{seed}-q{i}" for i in range(n)], dtype=object)
    text = rng.normal(size=(n, D_TEXT)).astype(np.float32)
    has_image = rng.random(n) >= no_image_share
    image = rng.normal(size=(n, D_IMAGE)).astype(np.float32) * has_image[:, None]
    stats = (rng.normal(size=(n, D_STATS)) * 40 + 120).astype(np.float32)
    signal = text[:, 0] + image[:, 0] + (stats[:, 0] - 120) / 40 + 0.1 * rng.normal(size=n)
    score_edge = np.clip(6 + 2 * signal, 1, 10)
    score_cloud = np.full(n, 8.0)
    features = QueryFeatures(item_ids=ids, text=text, image=image, stats=stats, has_image=has_image)
    pair = PairView(
        edge="edge-model",
        cloud="cloud-model",
        item_ids=ids,
        sources=np.array(["synthetic"] * n, dtype=object),
        score_edge=score_edge,
        score_cloud=score_cloud,
        latency_edge=rng.uniform(0.5, 1.5, size=n),
        latency_cloud=rng.uniform(4.0, 8.0, size=n),
        tokens_edge=rng.integers(20, 200, size=n).astype(np.float64),
        tokens_cloud=rng.integers(20, 400, size=n).astype(np.float64),
        missing_edge=0,
        missing_cloud=0,
    )
    return features, competence_labels(score_edge, score_cloud, mes=6.0), pair


SMALL_PARAMS: dict[str, dict] = {
    "ecvl": {"d_model": 32, "ffn": 64, "epochs": 8, "batch_size": 32, "learning_rate": 5e-3},
    "mlp": {"hidden": (64, 32, 16), "epochs": 8, "batch_size": 32, "learning_rate": 5e-3},
    "mf": {"dim": 16, "epochs": 8, "batch_size": 32, "learning_rate": 5e-3},
    "gbdt": {"max_iter": 30},
    "linear": {"penalties": 5, "inner_folds": 3},
    "random": {},
    "all-large": {},
    "all-small": {},
}
"""Hyperparameters that keep every router's training within a second or two on the synthetic problem."""
