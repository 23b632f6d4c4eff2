"""Benchmark loaders: interchange folders, JSONL/CSV tables and Hugging Face datasets (with presets)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ecvl_router.collect.benchmarks.folder import load_folder_items
from ecvl_router.collect.benchmarks.hub import HubSpec, hub_presets, load_hub_items
from ecvl_router.collect.benchmarks.items import BenchmarkError, BenchmarkItem, ColumnMap
from ecvl_router.collect.benchmarks.table import load_table_items

__all__ = [
    "BenchmarkError",
    "BenchmarkItem",
    "ColumnMap",
    "HubSpec",
    "hub_presets",
    "load_benchmark",
    "load_folder_items",
    "load_hub_items",
    "load_table_items",
]

TABLE_SUFFIXES = (".jsonl", ".csv")


def _preset_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_benchmark(
    spec: str,
    *,
    columns: ColumnMap | None = None,
    split: str | None = None,
    limit: int | None = None,
    cache_dir: Path | None = None,
) -> Iterator[BenchmarkItem]:
    """Items of a benchmark named by ``spec``: a preset (``chartqa``, ``mmmu-pro``, …), an interchange folder,
    or a ``.jsonl``/``.csv`` file read with ``columns``. ``split`` overrides a preset's split."""
    presets = {_preset_key(name): preset for name, preset in hub_presets().items()}
    path = Path(spec)
    if path.is_dir():
        return load_folder_items(path, limit=limit)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return load_table_items(path, columns or ColumnMap(), limit=limit)
    preset = presets.get(_preset_key(spec))
    if preset is not None:
        chosen = preset.model_copy(update={"split": split}) if split else preset
        return load_hub_items(chosen, limit=limit, cache_dir=cache_dir)
    raise BenchmarkError(
        f"unknown benchmark {spec!r}: not a folder, a {' or '.join(TABLE_SUFFIXES)} file, "
        f"or a preset ({', '.join(hub_presets())})"
    )
