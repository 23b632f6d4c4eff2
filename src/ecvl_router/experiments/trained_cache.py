"""Train a router on a routing task, or reuse the bundle a previous run cached for the same settings."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecvl_router.learning.bundle import BundleError, load_bundle, save_bundle
from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers import create_router
from ecvl_router.learning.routing_task import RoutingTask
from ecvl_router.code_version import training_code_version
from ecvl_router.learning.runs import settings_key
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import TrainedRouter, train_router

logger = logging.getLogger(__name__)


def task_fingerprint(task: RoutingTask) -> str:
    """A hash of the task's data: items, scores, latencies, labels and split."""
    digest = hashlib.sha256()
    pair = task.pair
    digest.update("\n".join(map(str, pair.item_ids)).encode("utf-8"))
    for array in (pair.score_edge, pair.score_cloud, pair.latency_edge, pair.latency_cloud, task.labels,
                  task.split.train, task.split.val, task.split.test):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def train_or_load(
    task: RoutingTask,
    features: QueryFeatures,
    router_name: str,
    scenarios: Sequence[Scenario],
    *,
    cache_dir: Path,
    feature_identity: dict[str, Any],
    router_params: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TrainedRouter, bool]:
    """The trained router and whether it came from the cache.

    ``features`` are aligned with ``task.pair``. The cache key covers the task's data, label rule and
    split, the router and its hyperparameters, the scenarios, the feature extractor's identity and the version
    of the training code (``code_version``), so that a change to a router or to training retrains.
    """
    params = {"random_state": task.seed, **(router_params or {})}
    settings = {
        "task": task.describe(),
        "data": task_fingerprint(task),
        "router": router_name,
        "params": params,
        "scenarios": [s.model_dump() for s in scenarios],
        "features": feature_identity,
        "code": training_code_version(),
    }
    directory = Path(cache_dir) / "routers" / f"{router_name}-{settings_key(settings)}"
    if directory.exists():
        try:
            return load_bundle(directory), True
        except BundleError as exc:
            logger.warning("ignoring unreadable cached router %s: %s", directory, exc)
    train, val = task.part("train"), task.part("val")
    trained = train_router(
        create_router(router_name, **params),
        features.take(train),
        task.labels[train],
        features.take(val),
        task.pair.take(val),
        list(scenarios),
        progress=progress,
    )
    save_bundle(trained, directory, extra_manifest={"settings": {"cache_key": settings}}, overwrite=True)
    return trained, False
