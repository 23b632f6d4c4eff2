"""The Response Score Dataset schema: files, fields and their types (see docs/data-format.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Kind = Literal["string", "number", "integer"]

DATASET_FILE = "dataset.json"
ITEMS_JSONL = "items.jsonl"
RESPONSES_JSONL = "responses.jsonl"
ITEMS_PARQUET = "items.parquet"
RESPONSES_PARQUET = "responses.parquet"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record: its JSON kind, whether it must be present and whether it may be null."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False


DATASET_FIELDS = (
    FieldSpec("name", "string"),
    FieldSpec("score_min", "number"),
    FieldSpec("score_max", "number"),
    FieldSpec("description", "string"),
)

GROUP_FIELD = "group"
"""The optional item field naming the item's group: items that belong together, such as variants of one
question, share a group, and every split keeps a group on one side (see docs/data-format.md)."""

ITEM_FIELDS = (
    FieldSpec("item_id", "string"),
    FieldSpec("source", "string"),
    FieldSpec("question", "string"),
    FieldSpec("image", "string", nullable=True),
    FieldSpec("reference", "string", nullable=True),
    FieldSpec(GROUP_FIELD, "string", required=False),
)

RESPONSE_FIELDS = (
    FieldSpec("item_id", "string"),
    FieldSpec("model", "string"),
    FieldSpec("response", "string"),
    FieldSpec("score", "number"),
    FieldSpec("latency_s", "number"),
    FieldSpec("output_tokens", "integer", nullable=True),
    FieldSpec("input_tokens", "integer", required=False, nullable=True),
    FieldSpec("ttft_s", "number", required=False, nullable=True),
    FieldSpec("rationale", "string", required=False, nullable=True),
)

_ARROW_TYPES = {"string": pa.string(), "number": pa.float64(), "integer": pa.int64()}


def arrow_schema(fields: tuple[FieldSpec, ...]) -> pa.Schema:
    """The Parquet schema of a record type (every field present, nullable where it may be absent)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[f.kind], nullable=f.nullable or not f.required) for f in fields])


def stored_item_fields(*, grouped: bool) -> tuple[FieldSpec, ...]:
    """The item columns a Parquet file stores: ``group`` only when some item has one (ungrouped data as before)."""
    return ITEM_FIELDS if grouped else tuple(f for f in ITEM_FIELDS if f.name != GROUP_FIELD)


def column_names(fields: tuple[FieldSpec, ...]) -> list[str]:
    """Names of the fields, in schema order."""
    return [f.name for f in fields]
