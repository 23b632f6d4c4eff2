"""Validation problems: what is wrong, in which file, on which line and in which field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One defect of a dataset; ``line`` counts from 1 (a JSONL line or a Parquet row), 0 for a whole file."""

    file: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" field {self.field!r}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class RSDValidationError(ValueError):
    """A dataset failed validation; ``problems`` lists every defect found."""

    def __init__(self, root: str, problems: list[Problem]):
        self.root = root
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{root}: {len(problems)} problem(s) found:\n{shown}{more}")
