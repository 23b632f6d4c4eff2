"""The items of a folder read on their own, without responses or scores, each line kept or reported by itself.

``ecvl-router predict`` scores the queries of any folder holding ``items.jsonl`` (or ``items.parquet``) and
their images: a whole Response Score Dataset, or a production log. Routing needs only ``item_id`` and
``question``; the other item fields may be left out (an absent ``image`` is a text-only query). Records are
checked by the same code as ``data validate`` (``validate.check_items``), field by field; an item with a
problem is reported on its line and the other items are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ecvl_router.data import schema
from ecvl_router.data.problems import Problem, RSDValidationError
from ecvl_router.data.storage import detect_storage, read_table
from ecvl_router.data.validate import check_items

ROUTING_FIELDS = ("item_id", "question")
"""The item fields a routing decision needs; the others of ``schema.ITEM_FIELDS`` are optional here."""

QUERY_FIELDS: tuple[schema.FieldSpec, ...] = tuple(
    spec if spec.name in ROUTING_FIELDS else replace(spec, required=False) for spec in schema.ITEM_FIELDS
)
"""The item schema with every field but ``ROUTING_FIELDS`` optional."""


@dataclass(frozen=True)
class ItemLine:
    """One line (JSONL) or row (Parquet) of an items file: the query it holds, or the problems that keep it out.

    ``item_id`` is set whenever the line names one, also when the line has problems; ``image`` is the path
    as written, ``image_path`` the file it names.
    """

    line: int
    item_id: str | None
    question: str | None
    image: str | None
    image_path: Path | None
    problems: tuple[Problem, ...]
    source: str | None = None

    @property
    def readable(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ItemsFile:
    """The items file of a folder, line by line in file order (unreadable lines included)."""

    root: Path
    file: str
    lines: list[ItemLine]

    @property
    def path(self) -> Path:
        return self.root / self.file

    @property
    def readable(self) -> list[ItemLine]:
        return [line for line in self.lines if line.readable]

    @property
    def problems(self) -> list[Problem]:
        return [problem for line in self.lines for problem in line.problems]


def read_items(root: Path | str) -> ItemsFile:
    """Read and check the items of ``root`` (image files must exist; they are not decoded here).

    Problems of single lines stay with their line; a file that cannot be read at all (no items file,
    an unreadable Parquet file) raises FileNotFoundError or RSDValidationError.
    """
    root = Path(root)
    storage = detect_storage(root)
    file = schema.ITEMS_PARQUET if storage == "parquet" else schema.ITEMS_JSONL
    records, read_problems = read_table(root / file, storage, QUERY_FIELDS)
    whole_file = [problem for problem in read_problems if problem.line == 0]
    if whole_file:
        raise RSDValidationError(str(root), whole_file)
    problems = read_problems + check_items(records, QUERY_FIELDS, root, file, decode_images=False)
    by_line: dict[int, list[Problem]] = {}
    for problem in problems:
        by_line.setdefault(problem.line, []).append(problem)
    parsed = dict(records)
    lines = [_item_line(root, number, parsed.get(number), tuple(by_line.get(number, ()))) for number in sorted({*parsed, *by_line})]
    return ItemsFile(root, file, lines)


def _item_line(root: Path, number: int, record: Any, problems: tuple[Problem, ...]) -> ItemLine:
    fields = record if isinstance(record, dict) else {}
    item_id, question, image = (fields.get(name) for name in ("item_id", "question", "image"))
    image = image if isinstance(image, str) else None
    return ItemLine(
        line=number,
        item_id=item_id if isinstance(item_id, str) else None,
        question=question if isinstance(question, str) else None,
        image=image,
        image_path=None if image is None else root.joinpath(*PurePosixPath(image).parts),
        problems=problems,
        source=fields.get("source") if isinstance(fields.get("source"), str) else None,
    )
