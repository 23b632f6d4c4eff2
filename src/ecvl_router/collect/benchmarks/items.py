"""Benchmark items as loaders yield them, and the mapping of a table's columns onto item fields."""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class BenchmarkError(ValueError):
    """A benchmark cannot be read; the message names the file or dataset, the row and the column."""


@dataclass(frozen=True)
class BenchmarkItem:
    """One image-text query: the image as a file or as encoded bytes, or None for a text-only query; ``group``
    (optional) names the items it belongs with (``items.group``)."""

    item_id: str
    source: str
    question: str
    reference: str | None
    image: Path | bytes | None
    group: str | None = None


class ColumnMap(BaseModel):
    """Which columns hold the item fields. A column left unset is looked for under its usual names and may
    be absent (except the question); a column named explicitly must exist."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    image: str | None = None
    reference: str | None = None
    id: str | None = None
    source: str | None = None
    choices: str | None = None


_USUAL_NAMES = {
    "question": ("question",),
    "image": ("image",),
    "reference": ("reference", "answer"),
    "id": ("item_id", "id"),
    "source": ("source",),
    "choices": (),
}


def resolve_columns(columns: ColumnMap, available: list[str], where: str) -> dict[str, str | None]:
    """The column to read for each field; raises BenchmarkError for an explicit column that is missing."""
    resolved: dict[str, str | None] = {}
    for field, usual in _USUAL_NAMES.items():
        explicit = getattr(columns, field)
        if explicit is not None:
            if explicit not in available:
                raise BenchmarkError(f"{where}: no column {explicit!r} (for {field}); columns: {', '.join(available)}")
            resolved[field] = explicit
        else:
            resolved[field] = next((name for name in usual if name in available), None)
    if resolved["question"] is None:
        raise BenchmarkError(f"{where}: no question column (looked for 'question'); columns: {', '.join(available)}")
    return resolved


def text_of(value: Any) -> str | None:
    """A cell as text: lists of answers become their distinct values joined with ' / '; empty is None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        distinct = list(dict.fromkeys(str(v).strip() for v in value if v is not None and str(v).strip()))
        return " / ".join(distinct) or None
    if isinstance(value, float) and value != value:  # NaN from CSV readers
        return None
    text = str(value).strip()
    return text or None


def parse_choices(value: Any, where: str) -> list[str]:
    """Answer options from a list or from a string holding a Python/JSON list (as some Hub datasets store them)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise BenchmarkError(f"{where}: choices {value[:80]!r} are not a list") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise BenchmarkError(f"{where}: choices must be a non-empty list")
    if len(value) > len(string.ascii_uppercase):
        raise BenchmarkError(f"{where}: more than {len(string.ascii_uppercase)} choices")
    return [str(choice) for choice in value]


def with_choices(question: str, reference: str | None, choices: list[str]) -> tuple[str, str | None]:
    """The question with lettered options appended, and a letter reference expanded to 'C. option text'."""
    letters = string.ascii_uppercase
    lines = "\n".join(f"{letters[i]}. {choice}" for i, choice in enumerate(choices))
    if reference is not None and len(reference) == 1 and reference.upper() in letters[: len(choices)]:
        reference = f"{reference.upper()}. {choices[letters.index(reference.upper())]}"
    return f"{question}\n\nOptions:\n{lines}", reference


def make_item(
    row: dict[str, Any],
    columns: dict[str, str | None],
    *,
    index: int,
    source: str,
    image: Path | bytes | None,
    where: str,
    id_prefix: str = "",
) -> BenchmarkItem:
    """An item from one table row (``where`` names the file or dataset and row for error messages); without an
    id column the id is ``{source}-{row index}``."""
    question = text_of(row.get(columns["question"]))
    if question is None:
        raise BenchmarkError(f"{where}: empty question (column {columns['question']!r})")
    reference = text_of(row.get(columns["reference"])) if columns["reference"] else None
    if columns["choices"]:
        question, reference = with_choices(question, reference, parse_choices(row.get(columns["choices"]), where))
    item_id = text_of(row.get(columns["id"])) if columns["id"] else None
    row_source = text_of(row.get(columns["source"])) if columns["source"] else None
    return BenchmarkItem(
        item_id=f"{id_prefix}{item_id}" if item_id else f"{source}-{index}",
        source=row_source or source,
        question=question,
        reference=reference,
        image=image,
    )
