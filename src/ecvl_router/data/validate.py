"""Record-level and dataset-level checks shared by both storage formats."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from ecvl_router.data.problems import Problem
from ecvl_router.data.schema import GROUP_FIELD, FieldSpec

Record = dict[str, Any]
NON_EMPTY_ITEM_FIELDS = ("item_id", "source", "question", GROUP_FIELD)
"""Item fields that, when present as strings, must hold more than white space."""


def _kind_error(value: Any, spec: FieldSpec) -> str | None:
    if value is None:
        return None if spec.nullable else "must not be null"
    if spec.kind == "string":
        return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a {spec.kind}, got {type(value).__name__}"
    if spec.kind == "integer" and not (isinstance(value, int) or (math.isfinite(value) and value == int(value))):
        return f"must be an integer, got {value!r}"
    return None


def check_fields(record: Any, fields: tuple[FieldSpec, ...], file: str, line: int) -> list[Problem]:
    """Problems of one record against its field specs: not an object, missing, unknown, wrongly typed."""
    if not isinstance(record, dict):
        return [Problem(file, line, None, f"expected a JSON object, got {type(record).__name__}")]
    known = {spec.name for spec in fields}
    problems = [Problem(file, line, name, "unknown field") for name in record if name not in known]
    for spec in fields:
        if spec.name not in record:
            if spec.required:
                problems.append(Problem(file, line, spec.name, "missing required field"))
            continue
        error = _kind_error(record[spec.name], spec)
        if error:
            problems.append(Problem(file, line, spec.name, error))
    return problems


def check_non_empty(record: Record, names: Iterable[str], file: str, line: int) -> list[Problem]:
    """Problems for string fields that are empty or only white space."""
    return [
        Problem(file, line, name, "must not be empty")
        for name in names
        if isinstance(record.get(name), str) and not record[name].strip()
    ]


def check_scale(info: Record, file: str) -> list[Problem]:
    """Problems of the dataset's score scale."""
    low, high = info.get("score_min"), info.get("score_max")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        return []  # already reported as a type problem
    if not (math.isfinite(low) and math.isfinite(high)):
        return [Problem(file, 0, "score_min", "score_min and score_max must be finite")]
    if high <= low:
        return [Problem(file, 0, "score_max", f"score_max ({high:g}) must exceed score_min ({low:g})")]
    return []


def check_image(root: Path, relative: str, file: str, line: int, *, decode: bool) -> Problem | None:
    """A problem when an item's image path is absolute, escapes the folder, is missing or is not an image."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not relative.strip():
        return Problem(file, line, "image", f"{relative!r} must be a path relative to the dataset folder")
    full = root / Path(*path.parts)
    if not full.is_file():
        return Problem(file, line, "image", f"image file {relative!r} not found")
    if decode:
        try:
            with Image.open(full) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            return Problem(file, line, "image", f"{relative!r} cannot be read as an image ({exc})")
    return None


def check_response_values(record: Record, score_min: float, score_max: float, file: str, line: int) -> list[Problem]:
    """Problems of a response's numbers: score outside the scale, bad latency, negative token counts."""
    problems = []
    score = record.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        if not math.isfinite(score):
            problems.append(Problem(file, line, "score", f"score must be a finite number, got {score!r}"))
        elif not score_min <= score <= score_max:
            problems.append(
                Problem(file, line, "score", f"score {score:g} is outside the scale [{score_min:g}, {score_max:g}]")
            )
    for name in ("latency_s", "ttft_s"):
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                problems.append(Problem(file, line, name, f"must be a finite number >= 0, got {value!r}"))
    for name in ("output_tokens", "input_tokens"):
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            problems.append(Problem(file, line, name, f"must be >= 0, got {value!r}"))
    return problems


def check_items(records: list[tuple[int, Any]], fields: tuple[FieldSpec, ...], root: Path, file: str, *, decode_images: bool) -> list[Problem]:
    """Problems of the items table: per-record fields, empty strings, duplicate ids, images."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for line, record in records:
        found = check_fields(record, fields, file, line)
        problems += found
        if not isinstance(record, dict):
            continue
        problems += check_non_empty(record, NON_EMPTY_ITEM_FIELDS, file, line)
        item_id = record.get("item_id")
        if isinstance(item_id, str):
            if item_id in seen:
                problems.append(Problem(file, line, "item_id", f"duplicate item_id {item_id!r} (first on line {seen[item_id]})"))
            else:
                seen[item_id] = line
        image = record.get("image")
        if isinstance(image, str):
            problem = check_image(root, image, file, line, decode=decode_images)
            if problem:
                problems.append(problem)
    return problems


def check_responses(
    records: list[tuple[int, Any]],
    fields: tuple[FieldSpec, ...],
    item_ids: set[str],
    score_min: float,
    score_max: float,
    file: str,
) -> list[Problem]:
    """Problems of the responses table: fields, values, unknown items, duplicate (item_id, model)."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    for line, record in records:
        problems += check_fields(record, fields, file, line)
        if not isinstance(record, dict):
            continue
        problems += check_non_empty(record, ("item_id", "model"), file, line)
        problems += check_response_values(record, score_min, score_max, file, line)
        item_id, model = record.get("item_id"), record.get("model")
        if isinstance(item_id, str) and item_id not in item_ids:
            problems.append(Problem(file, line, "item_id", f"response for unknown item {item_id!r}"))
        if isinstance(item_id, str) and isinstance(model, str):
            key = (item_id, model)
            if key in seen:
                problems.append(
                    Problem(file, line, "model", f"duplicate response of {model!r} for item {item_id!r} (first on line {seen[key]})")
                )
            else:
                seen[key] = line
    return problems
