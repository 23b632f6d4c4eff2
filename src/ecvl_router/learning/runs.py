"""Glue between the stages: featurise a dataset's items, record a trained run, and reopen it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecvl_router.learning.bundle import load_bundle
from ecvl_router.data import load_rsd
from ecvl_router.data.rsd import RSD
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor, extract_for_items
from ecvl_router.features.features import QueryFeatures
from ecvl_router.manifest import write_json_atomic
from ecvl_router.learning.routing_task import PARTS, RoutingTask, build_task
from ecvl_router.learning.training import TrainedRouter

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
SPLIT_FILE = "split.json"


def rsd_features(
    rsd: RSD,
    extractor: FeatureExtractor,
    *,
    cache_dir: Path | None,
    item_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> QueryFeatures:
    """Features of a dataset's items (all, or ``item_ids`` in that order) through the embedding cache, with the
    items' sources and groups (``RSD.group_keys``, if the dataset has groups)."""
    groups = rsd.group_keys()
    items = rsd.items.assign(group_key=groups).set_index("item_id", drop=False)
    if item_ids is not None:
        items = items.loc[list(item_ids)]
    features = extract_for_items(
        item_ids=items["item_id"].tolist(),
        questions=items["question"].tolist(),
        image_paths=[rsd.image_path(image) for image in items["image"].tolist()],
        extractor=extractor,
        cache_dir=cache_dir,
        progress=progress,
    )
    return features.with_context(sources=items["source"].to_numpy(), groups=None if groups is None else items["group_key"].to_numpy())


def settings_key(settings: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-able settings dict (for cache folders of trained routers)."""
    canonical = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where embeddings and trained routers are cached: ``$ECVL_ROUTER_CACHE`` or ``~/.cache/ecvl-router``."""
    return Path(os.environ.get("ECVL_ROUTER_CACHE", Path.home() / ".cache" / "ecvl-router"))


@dataclass
class RunContext:
    """A trained run reopened: its router, the task it was trained on and the features of that task."""

    trained: TrainedRouter
    task: RoutingTask
    features: QueryFeatures
    manifest: dict[str, Any]


def run_settings(
    rsd: RSD,
    task: RoutingTask,
    extractor_settings: ExtractorSettings,
    feature_identity: dict[str, Any],
) -> dict[str, Any]:
    """What a run records so that evaluate/route/serve can rebuild the task and the encoders."""
    return {
        "inputs": {"data": str(rsd.root.resolve()), "data_manifest": rsd.manifest, "data_name": rsd.info.name},
        "settings": {
            "task": task.describe(),
            "extractor": extractor_settings.model_dump(mode="json"),
            "features": feature_identity,
        },
        "score_scale": [rsd.info.score_min, rsd.info.score_max],
    }


def write_split(run_dir: Path, task: RoutingTask) -> None:
    """Record the item ids of each split part beside the bundle."""
    parts = {name: task.pair.item_ids[task.part(name)].tolist() for name in PARTS}
    write_json_atomic(Path(run_dir) / SPLIT_FILE, parts)


def open_run(
    run_dir: Path,
    *,
    data: Path | None = None,
    cache_dir: Path | None = None,
    extractor: FeatureExtractor | None = None,
    progress: Progress | None = None,
) -> RunContext:
    """Reload a trained run, rebuild its task from the dataset (checking the recorded split) and featurise it."""
    trained = load_bundle(run_dir)
    manifest = trained.manifest or {}
    task_settings = manifest["settings"]["task"]
    rsd = load_rsd(data or manifest["inputs"]["data"])
    task = build_task(
        rsd,
        task_settings["edge"],
        task_settings["cloud"],
        mes=task_settings["mes"],
        rule=task_settings["rule"],
        k=task_settings["k"],
        seed=task_settings["seed"],
        holdout_sources=task_settings["holdout_sources"],
    )
    recorded = json.loads((Path(run_dir) / SPLIT_FILE).read_text(encoding="utf-8"))
    for name in PARTS:
        if task.pair.item_ids[task.part(name)].tolist() != recorded[name]:
            raise ValueError(
                f"{run_dir}: the dataset no longer gives the {name} split this router was trained with "
                "(the data changed since training); retrain, or pass the original data with --data"
            )
    if extractor is None:
        extractor = FeatureExtractor.from_settings(ExtractorSettings(**manifest["settings"]["extractor"]))
    features = rsd_features(rsd, extractor, cache_dir=cache_dir, item_ids=task.pair.item_ids, progress=progress)
    return RunContext(trained, task, features, manifest)
