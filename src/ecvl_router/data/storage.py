"""Reading and writing the two RSD layouts: the JSONL interchange folder and the native Parquet folder."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecvl_router.data import schema
from ecvl_router.data.problems import Problem, RSDValidationError
from ecvl_router.data.rsd import RSD, DatasetInfo
from ecvl_router.data.validate import check_fields, check_items, check_responses, check_scale
from ecvl_router.manifest import build_manifest, file_sha256, read_manifest, write_json_atomic, write_manifest

logger = logging.getLogger(__name__)


def detect_storage(root: Path) -> str:
    """``parquet`` or ``interchange`` for a dataset folder; raises FileNotFoundError naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if (root / schema.ITEMS_PARQUET).is_file():
        return "parquet"
    if (root / schema.ITEMS_JSONL).is_file():
        return "interchange"
    raise FileNotFoundError(
        f"{root}: not a Response Score Dataset (expected {schema.ITEMS_JSONL} or {schema.ITEMS_PARQUET}; "
        "see docs/data-format.md)"
    )


def read_jsonl(path: Path) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(line number, parsed value) of every non-blank line, and a problem for each malformed one."""
    records, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append((line_number, json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(Problem(path.name, line_number, None, f"malformed JSON: {exc.msg} (column {exc.colno})"))
    return records, problems


def _read_parquet(path: Path, fields: tuple[schema.FieldSpec, ...]) -> tuple[list[tuple[int, Any]], list[Problem]]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return [], [Problem(path.name, 0, None, f"cannot read Parquet file: {exc}")]
    rows = table.to_pylist()
    optional = {f.name for f in fields if not f.required}
    # Optional columns are always written; a null in one means "absent" and is dropped before field checks.
    records = [(i, {k: v for k, v in row.items() if not (k in optional and v is None)}) for i, row in enumerate(rows, 1)]
    return records, []


def _read_info(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    path = root / schema.DATASET_FILE
    if not path.is_file():
        return None, [Problem(schema.DATASET_FILE, 0, None, "file not found")]
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [Problem(schema.DATASET_FILE, 0, None, f"malformed JSON: {exc}")]
    problems = check_fields(info, schema.DATASET_FIELDS, schema.DATASET_FILE, 0)
    if not problems:
        problems = check_scale(info, schema.DATASET_FILE)
    return (info if not problems else None), problems


def read_table(path: Path, storage: str, fields: tuple[schema.FieldSpec, ...]) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(line or row number, record) of a JSONL or Parquet table (``storage``), and the problems of reading it."""
    if not path.is_file():
        return [], [Problem(path.name, 0, None, "file not found")]
    return _read_parquet(path, fields) if storage == "parquet" else read_jsonl(path)


def check_dataset(root: Path, *, decode_images: bool = True) -> tuple[RSD | None, list[Problem]]:
    """Read and check a dataset folder of either layout; the RSD is returned only when no problem was found."""
    root = Path(root)
    storage = detect_storage(root)
    info, problems = _read_info(root)
    items_file = schema.ITEMS_PARQUET if storage == "parquet" else schema.ITEMS_JSONL
    responses_file = schema.RESPONSES_PARQUET if storage == "parquet" else schema.RESPONSES_JSONL
    items, item_problems = read_table(root / items_file, storage, schema.ITEM_FIELDS)
    responses, response_problems = read_table(root / responses_file, storage, schema.RESPONSE_FIELDS)
    problems += item_problems + response_problems
    problems += check_items(items, schema.ITEM_FIELDS, root, items_file, decode_images=decode_images)
    item_ids = {r["item_id"] for _, r in items if isinstance(r, dict) and isinstance(r.get("item_id"), str)}
    low, high = (info["score_min"], info["score_max"]) if info else (-math.inf, math.inf)
    problems += check_responses(responses, schema.RESPONSE_FIELDS, item_ids, low, high, responses_file)
    if problems or info is None:
        return None, problems
    rsd = RSD(
        root=root,
        info=DatasetInfo(name=info["name"], score_min=float(low), score_max=float(high), description=info["description"]),
        items=_frame([r for _, r in items], schema.ITEM_FIELDS),
        responses=_frame([r for _, r in responses], schema.RESPONSE_FIELDS),
        storage=storage,
        manifest=read_manifest(root),
    )
    return rsd, []


def _frame(records: list[dict[str, Any]], fields: tuple[schema.FieldSpec, ...]) -> pd.DataFrame:
    table = pa.Table.from_pylist(records, schema=schema.arrow_schema(fields))
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def load_rsd(path: str | Path, *, decode_images: bool = False) -> RSD:
    """Load a Response Score Dataset from an interchange or Parquet folder; raises RSDValidationError listing every problem.

    Images are checked for existence; ``decode_images=True`` also decodes each one (slower; done by ``data validate``).
    """
    rsd, problems = check_dataset(Path(path), decode_images=decode_images)
    if rsd is None:
        raise RSDValidationError(str(path), problems)
    return rsd


def _prepare_output(out: Path, force: bool) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out}: output folder exists and is not empty (use --force to replace it)")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def _copy_images(rsd: RSD, staging: Path) -> None:
    for relative in rsd.items["image"].dropna():
        target = staging.joinpath(*Path(relative).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(rsd.image_path(relative), target)


def _records_of(frame: pd.DataFrame, fields: tuple[schema.FieldSpec, ...]) -> Iterator[dict[str, Any]]:
    optional = {f.name for f in fields if not f.required}
    table = pa.Table.from_pandas(frame[schema.column_names(fields)], schema=schema.arrow_schema(fields), preserve_index=False)
    for row in table.to_pylist():
        yield {k: v for k, v in row.items() if not (k in optional and v is None)}


def write_parquet(rsd: RSD, out: Path, *, force: bool = False) -> Path:
    """Write ``rsd`` in the native Parquet layout (with images and a manifest); the folder appears only when complete."""
    out = Path(out)
    staging = _prepare_output(out, force)
    write_json_atomic(staging / schema.DATASET_FILE, rsd.info.as_dict())
    for frame, fields, name in (
        (rsd.items, schema.ITEM_FIELDS, schema.ITEMS_PARQUET),
        (rsd.responses, schema.RESPONSE_FIELDS, schema.RESPONSES_PARQUET),
    ):
        table = pa.Table.from_pandas(frame[schema.column_names(fields)], schema=schema.arrow_schema(fields), preserve_index=False)
        pq.write_table(table, staging / name)
    _copy_images(rsd, staging)
    manifest = build_manifest(
        "data import",
        inputs={"source": str(rsd.root.resolve()), "source_format": rsd.storage, "source_manifest": rsd.manifest},
        settings={},
        counts={"items": len(rsd.items), "responses": len(rsd.responses), "models": rsd.models, "sources": rsd.sources},
        sha256={name: file_sha256(staging / name) for name in (schema.ITEMS_PARQUET, schema.RESPONSES_PARQUET)},
    )
    write_manifest(staging, manifest)
    _publish(staging, out)
    logger.info("wrote %d items and %d responses to %s", len(rsd.items), len(rsd.responses), out)
    return out


def write_interchange(rsd: RSD, out: Path, *, force: bool = False) -> Path:
    """Write ``rsd`` in the JSONL interchange layout (with images); the folder appears only when complete."""
    out = Path(out)
    staging = _prepare_output(out, force)
    write_json_atomic(staging / schema.DATASET_FILE, rsd.info.as_dict())
    for frame, fields, name in (
        (rsd.items, schema.ITEM_FIELDS, schema.ITEMS_JSONL),
        (rsd.responses, schema.RESPONSE_FIELDS, schema.RESPONSES_JSONL),
    ):
        with open(staging / name, "w", encoding="utf-8") as handle:
            for record in _records_of(frame, fields):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    _copy_images(rsd, staging)
    _publish(staging, out)
    return out
