"""Items of a folder in the interchange format whose responses are still to be collected.

``responses.jsonl`` may be absent or empty; ``dataset.json`` is not needed. Items are checked exactly as
``ecvl-router data validate`` checks them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ecvl_router.collect.benchmarks.items import BenchmarkError, BenchmarkItem
from ecvl_router.data import schema
from ecvl_router.data.storage import read_jsonl
from ecvl_router.data.validate import check_items


def load_folder_items(root: Path, *, limit: int | None = None) -> Iterator[BenchmarkItem]:
    """The items of ``root/items.jsonl`` (the first ``limit`` of them); raises BenchmarkError listing every problem."""
    root = Path(root)
    path = root / schema.ITEMS_JSONL
    if not path.is_file():
        raise BenchmarkError(f"{root}: no {schema.ITEMS_JSONL} (see docs/data-format.md)")
    records, problems = read_jsonl(path)
    if limit is not None:
        records = records[:limit]
    problems += check_items(records, schema.ITEM_FIELDS, root, schema.ITEMS_JSONL, decode_images=False)
    if problems:
        shown = "\n".join(f"  {problem}" for problem in problems[:20])
        raise BenchmarkError(f"{root}: {len(problems)} problem(s):\n{shown}")
    for _, record in records:
        image = record["image"]
        yield BenchmarkItem(
            item_id=record["item_id"],
            source=record["source"],
            question=record["question"],
            reference=record["reference"],
            image=root.joinpath(*PurePosixPath(image).parts) if image is not None else None,
            group=record.get(schema.GROUP_FIELD),
        )
