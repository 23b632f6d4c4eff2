"""Items of a JSONL or CSV file with one row per query; image paths are relative to the file's folder."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecvl_router.collect.benchmarks.items import BenchmarkError, BenchmarkItem, ColumnMap, make_item, resolve_columns, text_of


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number counted from 1, row) pairs."""
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):  # line 1 is the header
                yield number, row
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkError(f"{path}:{number}: malformed JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def _columns_of(path: Path) -> list[str]:
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    names: dict[str, None] = {}
    for _, row in _rows(path):
        names.update(dict.fromkeys(row))
    return list(names)


def load_table_items(path: Path, columns: ColumnMap, *, limit: int | None = None) -> Iterator[BenchmarkItem]:
    """Items from a ``.jsonl`` or ``.csv`` file; the source defaults to the file name without extension."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    resolved = resolve_columns(columns, _columns_of(path), str(path))
    seen: dict[str, int] = {}
    for index, (number, row) in enumerate(_rows(path)):
        if limit is not None and index >= limit:
            return
        where = f"{path}:{number}"
        image_path = text_of(row.get(resolved["image"])) if resolved["image"] else None
        image = None
        if image_path is not None:
            image = Path(image_path) if Path(image_path).is_absolute() else path.parent / image_path
            if not image.is_file():
                raise BenchmarkError(f"{where}: image {image_path!r} (column {resolved['image']!r}) not found")
        item = make_item(row, resolved, index=index, source=path.stem, image=image, where=where)
        if item.item_id in seen:
            raise BenchmarkError(f"{where}: duplicate id {item.item_id!r} (first on line {seen[item.item_id]})")
        seen[item.item_id] = number
        yield item
