"""Writing the demo benchmark to disk as an interchange-format Response Score Dataset."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ecvl_router.data import schema
from ecvl_router.data.demo.families import FAMILIES
from ecvl_router.data.demo.simulation import (
    DEMO_MODELS, SCORE_MAX, SCORE_MIN, draw_item_hardness, simulate_response, simulation_truth, visible_margin,
)
from ecvl_router.data.demo.truth import TRUTH_JSON, TRUTH_PARQUET, write_truth
from ecvl_router.manifest import build_manifest, file_sha256, read_manifest, write_json_atomic, write_manifest
from ecvl_router.scenarios import DEFAULT_MES

logger = logging.getLogger(__name__)

DEMO_NAME = "ecvl-router-demo"
PRODUCER = "ecvl-router demo"
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg"}
_SAVE_OPTIONS = {"PNG": {"compress_level": 3}, "JPEG": {"quality": 85}}
_CONTENT, _HIDDEN, _MODEL = 0, 1, 2  # independent random streams of one item


@dataclass(frozen=True)
class DemoSummary:
    """What ``generate_demo`` wrote, and the calibration figures it measured on it."""

    out_dir: Path
    n_items: int
    n_responses: int
    models: tuple[str, ...]
    sources: dict[str, int]
    seconds: float
    mean_score: float
    median_score: float
    solve_rate: dict[str, float]  # share of scores >= MES 6, per model
    median_latency_s: dict[str, float]
    latency_p99_s: float


def _description(seed: int, n_items: int) -> str:
    return (
        "SIMULATED DATA (simulated: true). A demo benchmark generated procedurally by ecvl-router "
        f"(seed {seed}, {n_items} items): images, questions and reference answers are rendered synthetically "
        "in six task families that mirror ChartQA, GQA, VizWiz, MMMU-Pro, MMStar and WildVision, and a seventh of "
        "text-only questions; the models "
        "(sim-vlm-*), their responses, judge scores (1-10) and latencies are simulated from a documented latent "
        "model, not produced by real VLMs or a real judge. See docs/demo-benchmark.md."
    )


class _ItemOutput(NamedTuple):
    item_line: str
    response_lines: list[str]
    source: str
    figures: list[tuple[str, int, float]]  # (model, score, latency_s) per response
    margins: list[float]  # visible mean margin per model (the simulation truth)


def _stream(seed: int, index: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, *key)))


def _item_id(index: int) -> str:
    return f"demo-{index:05d}"


def _make_item(seed: int, index: int, images_dir: Path) -> _ItemOutput:
    """Render item ``index``, save its image and simulate every model's response."""
    rng = _stream(seed, index, _CONTENT)
    names = list(FAMILIES)
    weights = np.array([FAMILIES[name][1] for name in names])
    source = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    task = FAMILIES[source][0](rng)
    item_id = _item_id(index)
    image_path = None
    if task.image is not None:
        filename = item_id + _EXTENSIONS[task.image_format]
        task.image.save(images_dir / filename, task.image_format, **_SAVE_OPTIONS[task.image_format])
        image_path = f"{schema.IMAGES_DIR}/{filename}"
    item = {"item_id": item_id, "source": source, "question": task.question, "image": image_path, "reference": task.reference}
    hidden = draw_item_hardness(_stream(seed, index, _HIDDEN))
    lines, figures = [], []
    margins = [visible_margin(task, model) for model in DEMO_MODELS]
    for m, model in enumerate(DEMO_MODELS):
        simulated = simulate_response(task, model, hidden, _stream(seed, index, _MODEL, m))
        record = {
            "item_id": item_id,
            "model": model.name,
            "response": simulated.response,
            "score": simulated.score,
            "latency_s": simulated.latency_s,
            "output_tokens": simulated.output_tokens,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
        figures.append((model.name, simulated.score, simulated.latency_s))
    return _ItemOutput(json.dumps(item, ensure_ascii=False), lines, source, figures, margins)


def is_demo_output(path: Path) -> bool:
    """Whether ``path`` is a folder this generator wrote (its manifest names the demo as producer)."""
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("producer") == PRODUCER


def generate_demo(
    out_dir: Path,
    *,
    n_items: int = 3000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Write a simulated multimodal RSD of ``n_items`` items answered by ``DEMO_MODELS`` to ``out_dir``.

    The folder is in the interchange format (docs/data-format.md) plus a ``manifest.json`` and the simulation
    truth (``truth.TRUTH_PARQUET`` and ``truth.TRUTH_JSON``: each (item, model)'s visible mean margin and the
    noise constants), which no router and no feature reads.

    The output is byte-identical for the same ``seed`` and ``n_items`` (except the manifest's timestamp).
    ``out_dir`` must be absent, empty, or a previous demo output (which is replaced). ``progress(done,
    total)`` is called after each item.
    """
    out_dir = Path(out_dir).absolute()
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_demo_output(out_dir))):
        raise FileExistsError(
            f"{out_dir}: exists and is not empty, and is not a previous demo output; choose another folder or empty it"
        )
    started = time.perf_counter()
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    images_dir = staging / schema.IMAGES_DIR
    images_dir.mkdir(parents=True)
    logger.info("generating %d simulated items (seed %d) into %s", n_items, seed, out_dir)

    figures: list[tuple[str, int, float]] = []
    margins: list[list[float]] = []
    sources: Counter[str] = Counter()
    with open(staging / schema.ITEMS_JSONL, "w", encoding="utf-8") as items, open(
        staging / schema.RESPONSES_JSONL, "w", encoding="utf-8"
    ) as responses:
        for index in range(n_items):
            output = _make_item(seed, index, images_dir)
            items.write(output.item_line + "\n")
            responses.write("\n".join(output.response_lines) + "\n")
            figures.extend(output.figures)
            margins.append(output.margins)
            sources[output.source] += 1
            if progress is not None:
                progress(index + 1, n_items)
    info = {"name": DEMO_NAME, "score_min": SCORE_MIN, "score_max": SCORE_MAX, "description": _description(seed, n_items)}
    write_json_atomic(staging / schema.DATASET_FILE, info)
    models = tuple(m.name for m in DEMO_MODELS)
    item_ids = pd.Index([_item_id(index) for index in range(n_items)], name="item_id")
    write_truth(staging, simulation_truth(pd.DataFrame(margins, index=item_ids, columns=list(models))))
    write_manifest(
        staging,
        build_manifest(
            "demo",
            inputs={},
            settings={"n_items": n_items, "seed": seed},
            simulated=True,
            counts={"items": n_items, "responses": len(figures), "models": list(models), "sources": dict(sources)},
            sha256={
                name: file_sha256(staging / name) for name in (schema.ITEMS_JSONL, schema.RESPONSES_JSONL, TRUTH_PARQUET, TRUTH_JSON)
            },
        ),
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    summary = _summarise(out_dir, figures, models, dict(sorted(sources.items())), time.perf_counter() - started)
    logger.info("wrote %d items and %d responses in %.1f s", summary.n_items, summary.n_responses, summary.seconds)
    return summary


def _summarise(
    out_dir: Path, figures: list[tuple[str, int, float]], models: tuple[str, ...], sources: dict[str, int], seconds: float
) -> DemoSummary:
    names = np.array([f[0] for f in figures])
    scores = np.array([f[1] for f in figures], dtype=float)
    latencies = np.array([f[2] for f in figures], dtype=float)
    return DemoSummary(
        out_dir=out_dir,
        n_items=sum(sources.values()),
        n_responses=len(figures),
        models=models,
        sources=sources,
        seconds=seconds,
        mean_score=float(scores.mean()),
        median_score=float(np.median(scores)),
        solve_rate={m: float((scores[names == m] >= DEFAULT_MES).mean()) for m in models},
        median_latency_s={m: float(np.median(latencies[names == m])) for m in models},
        latency_p99_s=float(np.percentile(latencies, 99)),
    )
