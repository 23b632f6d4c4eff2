"""The folder a collection grows in, and which ``judge`` turns into an interchange-format dataset.

```
DIR/
  dataset.json, items.jsonl, images/   the benchmark items (written by collect)
  raw/results*.jsonl                   one record per call outcome (collect; one file per shard)
  raw/collect-manifest.json            backends and settings of the collection
  raw/judgements.jsonl                 one record per judgement (judge)
  responses.jsonl, manifest.json       the judged responses (judge)
```
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ecvl_router.collect.benchmarks import BenchmarkError, BenchmarkItem
from ecvl_router.collect.shard import Shard
from ecvl_router.data import schema
from ecvl_router.data.validate import check_items
from ecvl_router.manifest import write_json_atomic

RAW_DIR = "raw"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tiff"}
_ITEM_FIELDS = ("source", "question", "reference")


def _image_bytes(image: Path | bytes, item_id: str) -> tuple[bytes, str]:
    data = image.read_bytes() if isinstance(image, Path) else image
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.verify()
            image_format = opened.format
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BenchmarkError(f"item {item_id!r}: the image cannot be read ({exc})") from None
    extension = _EXTENSIONS.get(image_format or "")
    if extension is None:  # an exotic format: store a PNG every reader understands
        buffer = io.BytesIO()
        with Image.open(io.BytesIO(data)) as opened:
            opened.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    return data, extension


def _file_name(item_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", item_id).strip(".") or "item"
    if safe != item_id:
        safe += "-" + hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:8]
    return safe


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines through a temporary file and a rename, so readers never see half a file."""
    _write_atomic(Path(path), "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8"))


def read_json(path: Path) -> Any:
    """A JSON document, or None when the file does not exist."""
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None


class CollectionDir:
    """Paths and item bookkeeping of a collection folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def items_path(self) -> Path:
        return self.root / schema.ITEMS_JSONL

    @property
    def raw_dir(self) -> Path:
        return self.root / RAW_DIR

    @property
    def judgements_path(self) -> Path:
        return self.raw_dir / "judgements.jsonl"

    @property
    def collect_manifest_path(self) -> Path:
        return self.raw_dir / "collect-manifest.json"

    def results_path(self, shard: Shard | None) -> Path:
        """The results store this run appends to (one per shard, so machines never share a file)."""
        return self.raw_dir / (f"results-{shard.label}.jsonl" if shard else "results.jsonl")

    def results_files(self) -> list[Path]:
        """Every results store in the folder (all shards)."""
        return sorted(self.raw_dir.glob("results*.jsonl"))

    def read_items(self) -> list[dict[str, Any]]:
        """The items recorded so far, checked like ``data validate`` checks them."""
        if not self.items_path.is_file():
            return []
        records = []
        for number, line in enumerate(self.items_path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise BenchmarkError(f"{self.items_path}:{number}: malformed JSON: {exc.msg}") from None
        problems = check_items(records, schema.ITEM_FIELDS, self.root, schema.ITEMS_JSONL, decode_images=False)
        if problems:
            raise BenchmarkError(f"{self.root}: " + "; ".join(str(p) for p in problems[:10]))
        return [record for _, record in records]

    def add_items(self, items: Iterable[BenchmarkItem], *, dataset_name: str) -> list[dict[str, Any]]:
        """Record ``items`` (images copied into ``images/``) next to those already there; returns their records.

        An item already recorded must be unchanged; an id may appear once among ``items``.
        """
        existing = {record["item_id"]: record for record in self.read_items()}
        (self.root / schema.IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        added: dict[str, dict[str, Any]] = {}
        for item in items:
            if item.item_id in added:
                raise BenchmarkError(f"item id {item.item_id!r} appears twice among the benchmarks; ids must be unique")
            record, image = self._prepare(item)
            previous = existing.get(item.item_id)
            target = self.root / record["image"] if record["image"] else None
            stored = target.read_bytes() if target is not None and target.is_file() else None
            changed = [name for name in (*_ITEM_FIELDS, "image", schema.GROUP_FIELD) if previous and previous.get(name) != record.get(name)]
            if previous and stored is not None and stored != image:
                changed.append("image content")
            if changed:
                raise BenchmarkError(
                    f"item {item.item_id!r} differs from the one in {self.items_path} ({', '.join(changed)}); "
                    "collect into a new folder"
                )
            if target is not None and stored != image:
                _write_atomic(target, image)
            added[item.item_id] = record
        merged = {**existing, **{key: value for key, value in added.items() if key not in existing}}
        write_jsonl_atomic(self.items_path, merged.values())
        if not (self.root / schema.DATASET_FILE).is_file():
            write_json_atomic(
                self.root / schema.DATASET_FILE,
                {"name": dataset_name, "score_min": 1, "score_max": 10, "description": "collected by ecvl-router; not judged yet"},
            )
        return list(added.values())

    @staticmethod
    def _prepare(item: BenchmarkItem) -> tuple[dict[str, Any], bytes | None]:
        """The item's record and its image's bytes as they will be stored."""
        relative, data = None, None
        if item.image is not None:
            data, extension = _image_bytes(item.image, item.item_id)
            relative = f"{schema.IMAGES_DIR}/{_file_name(item.item_id)}{extension}"
        record = {
            "item_id": item.item_id,
            "source": item.source,
            "question": item.question,
            "image": relative,
            "reference": item.reference,
            **({schema.GROUP_FIELD: item.group} if item.group is not None else {}),
        }
        return record, data
