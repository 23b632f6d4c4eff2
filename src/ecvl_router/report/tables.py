"""Result tables: long-format rows (one per pair × router × scenario [× seed]) rendered as CSV and Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

METRIC_COLUMNS = ("apsp", "ca", "ail", "tau", "rcs")
HEADERS = {"apsp": "APSP ↑", "ca": "CA ↑", "ail": "AIL [s] ↓", "tau": "τ*", "rcs": "RCS ↑"}
DIGITS = {"apsp": 3, "ca": 3, "ail": 2, "tau": 2, "rcs": 4}


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write long-format result rows as CSV."""
    pd.DataFrame(list(rows)).to_csv(path, index=False)
    return path


def _cell(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) > 1:
        return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"
    return f"{values.iloc[0]:.{digits}f}"


def scenario_table(
    rows: Sequence[dict[str, Any]], scenarios: Sequence[str], *, row_keys: Sequence[str] = ("pair", "router")
) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the wide scenario table (see ``scenario_table_markdown``)."""
    frame = pd.DataFrame(list(rows))
    header = [*row_keys] + [f"{s}: {HEADERS[m]}" for s in scenarios for m in METRIC_COLUMNS]
    body = []
    for keys, group in frame.groupby(list(row_keys), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        cells = [str(k) for k in keys]
        for scenario in scenarios:
            part = group[group["scenario"] == scenario]
            cells += [_cell(part[m], DIGITS[m]) for m in METRIC_COLUMNS]
        body.append(cells)
    return header, body


def interval_cell(row: pd.Series | Mapping[str, Any], key: str, digits: int) -> str:
    """``mean [low, high]`` of one metric; the mean alone without bounds, ``–`` without a mean."""
    mean, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if pd.isna(mean):
        return "–"
    if pd.isna(low) or pd.isna(high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_grid(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells (a ``|`` inside a cell is escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, body)]) + "\n"


def scenario_table_markdown(rows: Sequence[dict[str, Any]], scenarios: Sequence[str], *, row_keys: Sequence[str] = ("pair", "router")) -> str:
    """A wide Markdown table: one row per ``row_keys`` combination, APSP/CA/AIL/τ*/RCS per scenario.

    Each scenario's columns are that scenario's own operating point. With several seeds per row, cells
    show mean ± standard deviation over seeds.
    """
    return markdown_grid(*scenario_table(rows, scenarios, row_keys=row_keys))


def grouped_table(
    rows: Sequence[dict[str, Any]], row_keys: Sequence[str], columns: Sequence[tuple[str, str, int]]
) -> tuple[list[str], list[list[str]]]:
    """Header and cells with one row per ``row_keys`` combination (in order of appearance) and one column per
    ``(key, header, digits)``; a cell is the value, or mean ± std when several seeds share the row."""
    frame = pd.DataFrame(list(rows))
    header = [*row_keys, *(title for _, title, _ in columns)]
    body = []
    for keys, group in frame.groupby(list(row_keys), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        body.append([str(k) for k in keys] + [_cell(group[key], digits) if key in group else "–" for key, _, digits in columns])
    return header, body
