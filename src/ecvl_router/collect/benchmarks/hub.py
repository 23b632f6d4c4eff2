"""Items of Hugging Face datasets, by Hub id or local folder, with presets for the paper's seven benchmarks.

``datasets`` is an optional dependency (``pip install ecvl-router[hf]``), imported when a dataset is loaded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict

from ecvl_router.collect.benchmarks.items import BenchmarkError, BenchmarkItem, ColumnMap, make_item, resolve_columns


class HubSpec(BaseModel):
    """Where a Hugging Face dataset is and which columns hold the item fields."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    config: str | None = None
    split: str = "test"
    source: str
    columns: ColumnMap = ColumnMap()
    image_config: str | None = None  # a second config holding the images, joined on image_key == image_id
    image_key: str | None = None
    image_id: str = "id"
    image_column: str = "image"


@cache
def hub_presets() -> dict[str, HubSpec]:
    """The presets shipped with the package (``presets.yaml``), by name."""
    text = files("ecvl_router.collect.benchmarks").joinpath("presets.yaml").read_text(encoding="utf-8")
    return {name: HubSpec.model_validate(spec) for name, spec in yaml.safe_load(text).items()}


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise BenchmarkError("Hugging Face datasets need the 'datasets' package: pip install 'ecvl-router[hf]'") from None
    return datasets


def _load(spec: HubSpec, config: str | None, cache_dir: Path | None) -> Any:
    datasets = _datasets()
    try:
        return datasets.load_dataset(spec.dataset, config, split=spec.split, cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:  # the library raises many kinds (network, missing config or split, bad files)
        name = f"{spec.dataset}" + (f" (config {config!r})" if config else "") + f", split {spec.split!r}"
        raise BenchmarkError(f"cannot load Hugging Face dataset {name}: {type(exc).__name__}: {exc}") from exc


def _undecoded(dataset: Any, column: str | None) -> Any:
    """The dataset with ``column`` giving encoded bytes instead of decoded PIL images (faster, lossless)."""
    datasets = _datasets()
    if column is not None and isinstance(dataset.features.get(column), datasets.Image):
        return dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


def image_of(value: Any, where: str) -> Path | bytes | None:
    """An image cell as a file path or encoded bytes: {'bytes', 'path'} dicts, bytes, paths or PIL images."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if value is None or value == "":
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        if not Path(value).is_file():
            raise BenchmarkError(f"{where}: image file {value!r} not found")
        return Path(value)
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    raise BenchmarkError(f"{where}: unsupported image value of type {type(value).__name__}")


def load_hub_items(spec: HubSpec, *, limit: int | None = None, cache_dir: Path | None = None) -> Iterator[BenchmarkItem]:
    """Items of a Hugging Face dataset (Hub id or local folder); ids are ``{source}-{id column or row}``."""
    dataset = _load(spec, spec.config, cache_dir)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    name = f"{spec.dataset}[{spec.split}]"
    columns = resolve_columns(spec.columns, list(dataset.column_names), name)
    if spec.image_config is not None:
        if spec.image_key not in dataset.column_names:
            raise BenchmarkError(f"{name}: no column {spec.image_key!r} (image_key)")
        images = _undecoded(_load(spec, spec.image_config, cache_dir), spec.image_column)
        for required in (spec.image_id, spec.image_column):
            if required not in images.column_names:
                raise BenchmarkError(f"{spec.dataset} (config {spec.image_config!r}): no column {required!r}")
        position = {str(key): row for row, key in enumerate(images[spec.image_id])}
    else:
        dataset = _undecoded(dataset, columns["image"])
    for index, row in enumerate(dataset):
        where = f"{name} row {index}"
        if spec.image_config is not None:
            key = str(row[spec.image_key])
            if key not in position:
                raise BenchmarkError(f"{where}: image {key!r} not in config {spec.image_config!r}")
            image = image_of(images[position[key]][spec.image_column], where)
        else:
            image = image_of(row.get(columns["image"]), where) if columns["image"] else None
        yield make_item(row, columns, index=index, source=spec.source, image=image, where=where, id_prefix=f"{spec.source}-")
