"""Scoring the items of any folder with a trained router bundle, without retraining (``ecvl-router predict``).

Features come from the bundle's encoders through the embedding cache, as in training; every decision is
``TrainedRouter.decide``, the one ``route`` and the gateway make. The result is one row per line of the
items file: ``item_id``, ``p`` (``p_<scenario>`` for each scenario when the bundle keeps a different router
state per scenario), ``route_<scenario>`` (``edge`` or ``cloud``) and ``error``, which names the file, line
and field of whatever kept an item from being scored (its other cells are empty).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.data.items import ItemLine, ItemsFile
from ecvl_router.data.problems import Problem
from ecvl_router.features.extractor import FeatureExtractor, extract_for_items
from ecvl_router.features.features import QueryFeatures
from ecvl_router.features.imaging import open_image
from ecvl_router.learning.training import TrainedRouter
from ecvl_router.manifest import build_manifest, file_sha256, write_json_atomic

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
FORMATS = {".csv": "csv", ".parquet": "parquet"}
"""Output suffixes and the table format each one writes."""


def item_features(
    items: ItemsFile, extractor: FeatureExtractor, *, cache_dir: Path | None, progress: Progress | None = None
) -> tuple[QueryFeatures, dict[int, Problem]]:
    """Features of the readable items, and a problem for each line whose image cannot be decoded.

    Images are decoded one by one only when featurising all items failed; what was embedded before the
    failure is in the cache and is not computed again.
    """
    pending = items.readable
    try:
        return _extract(pending, extractor, cache_dir, progress), {}
    except (FileNotFoundError, ValueError):
        undecodable = {line.line: problem for line in pending if (problem := _image_problem(items.file, line))}
        if not undecodable:
            raise
    logger.info("%d images cannot be decoded; embedding the other items", len(undecodable))
    kept = [line for line in pending if line.line not in undecodable]
    return _extract(kept, extractor, cache_dir, progress), undecodable


def _extract(lines: Sequence[ItemLine], extractor: FeatureExtractor, cache_dir: Path | None, progress: Progress | None) -> QueryFeatures:
    """Features of ``lines``, with their sources where the items name them (routers such as ``lookup`` read them)."""
    return extract_for_items(
        item_ids=[line.item_id for line in lines],
        questions=[line.question for line in lines],
        image_paths=[line.image_path for line in lines],
        extractor=extractor,
        cache_dir=cache_dir,
        progress=progress,
    ).with_sources([line.source for line in lines])


def _image_problem(file: str, line: ItemLine) -> Problem | None:
    """Why the image of ``line`` cannot be decoded, or None when it can (or the item has none)."""
    if line.image_path is None:
        return None
    try:
        open_image(line.image_path, name=repr(line.image))
    except (FileNotFoundError, ValueError) as exc:
        return Problem(file, line.line, "image", str(exc))
    return None


def prediction_table(
    trained: TrainedRouter,
    items: ItemsFile,
    features: QueryFeatures,
    failed: dict[int, Problem],
    *,
    mes: float | None = None,
    edge: str | None = None,
    cloud: str | None = None,
) -> pd.DataFrame:
    """One row per line of ``items``, in file order: item_id, p, route_<scenario> per scenario, error.

    ``features`` are those of the readable lines not in ``failed``, in file order; ``mes``, ``edge`` and
    ``cloud`` are handed to ``TrainedRouter.decide`` (another MES or pair, ecvl-multi bundles).
    """
    scored = np.array([line.readable and line.line not in failed for line in items.lines], dtype=bool)
    if scored.sum() != len(features):
        raise ValueError(f"{len(features)} feature rows for {int(scored.sum())} scorable items")
    one_p = len({choice.epoch for choice in trained.choices.values()}) == 1
    p_columns: dict[str, np.ndarray] = {}
    route_columns: dict[str, np.ndarray] = {}
    for name in trained.scenario_names:
        to_edge, p = _decide(trained, features, name, mes=mes, edge=edge, cloud=cloud)
        p_columns["p" if one_p else f"p_{name}"] = _spread(scored, p, np.nan)
        route_columns[f"route_{name}"] = _spread(scored, np.where(to_edge, "edge", "cloud").astype(object), None)
    errors = ["; ".join(str(problem) for problem in _problems(line, failed)) or None for line in items.lines]
    text = {"item_id": [line.item_id for line in items.lines], **route_columns, "error": errors}
    columns = {name: pd.array(values, dtype="string") for name, values in text.items()} | p_columns
    return pd.DataFrame({name: columns[name] for name in ("item_id", *p_columns, *route_columns, "error")})


def _decide(trained: TrainedRouter, features: QueryFeatures, name: str, **overrides: Any) -> tuple[np.ndarray, np.ndarray]:
    """(to_edge, p) of scenario ``name``; empty without features (a router need not predict on none)."""
    if not len(features):
        return np.zeros(0, dtype=bool), np.zeros(0)
    to_edge, p, _ = trained.decide(features, name, **overrides)
    return to_edge, p


def _problems(line: ItemLine, failed: dict[int, Problem]) -> list[Problem]:
    """What kept ``line`` from being scored: its own problems and the one found while embedding it."""
    return [*line.problems, failed[line.line]] if line.line in failed else list(line.problems)


def _spread(scored: np.ndarray, values: np.ndarray, empty: Any) -> np.ndarray:
    """``values`` of the scored rows placed among all rows, ``empty`` elsewhere."""
    column = np.full(len(scored), empty, dtype=values.dtype)
    column[scored] = values
    return column


def output_format(out: Path) -> str:
    """``csv`` or ``parquet`` by the suffix of ``out``; ValueError for any other suffix."""
    try:
        return FORMATS[Path(out).suffix.lower()]
    except KeyError:
        raise ValueError(f"{out}: the output must end in {' or '.join(FORMATS)}") from None


def manifest_path(out: Path) -> Path:
    """The manifest written beside a prediction table."""
    return Path(out).with_name(Path(out).name + ".manifest.json")


def write_predictions(
    table: pd.DataFrame, out: Path, *, run_dir: Path, items: ItemsFile, settings: dict[str, Any]
) -> Path:
    """Write ``table`` (CSV or Parquet by the suffix of ``out``) and its manifest, each through a rename."""
    out = Path(out)
    kind = output_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        if kind == "parquet":
            table.to_parquet(partial, index=False)
        else:
            table.to_csv(partial, index=False)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    failed = int(table["error"].notna().sum())
    manifest = build_manifest(
        "predict",
        inputs={"run": str(Path(run_dir).resolve()), "data": str(items.root.resolve()), "items_sha256": file_sha256(items.path)},
        settings=settings,
        output=out.name,
        counts={"items": len(table), "scored": len(table) - failed, "failed": failed},
    )
    write_json_atomic(manifest_path(out), manifest)
    return out


def scenario_settings(trained: TrainedRouter, *, mes: float | None, edge: str | None, cloud: str | None) -> dict[str, Any]:
    """What a prediction table was decided with: the overrides, and each scenario's MES, τ, fallback and promise."""
    bundle_edge, bundle_cloud = trained.trained_pair()
    scenarios = {}
    for name, choice in trained.choices.items():
        served_mes = choice.scenario.mes if mes is None else mes
        scenarios[name] = {
            "mes": served_mes,
            "tau": choice.tau_at(served_mes),
            "fallback": choice.fallback,
            "promise": choice.scenario.promise(),
        }
    return {"router": trained.label, "edge": edge or bundle_edge, "cloud": cloud or bundle_cloud, "mes": mes, "scenarios": scenarios}
