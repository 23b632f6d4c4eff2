"""Console helpers shared by the CLI commands: the rich console, progress bars, errors and JSON output."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PIPE_WIDTH = 100_000
"""Columns assumed when output goes to a file or a pipe: lines are never wrapped, table cells never cut."""


def _console(stderr: bool) -> Console:
    """A rich console that wraps at the terminal's width, and not at all when the stream is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


console = _console(stderr=False)
err_console = _console(stderr=True)

ProgressCallback = Callable[[int, int], None]
PIPE_PROGRESS_SECONDS = 30.0
"""When stderr is not a terminal (a log file, CI), a progress bar prints a plain line at most this often."""


def configure_logging(verbose: bool) -> None:
    """Route library logging through rich, at INFO with --verbose and WARNING otherwise."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def plain(value: object) -> str:
    """``value`` as text that rich prints as it is (paths, names and messages may contain ``[...]``)."""
    return escape(str(value))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error in red on stderr and exit with ``code``; ``message`` is plain text, never markup."""
    err_console.print(f"[bold red]error:[/] {plain(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressCallback]:
    """A rich progress bar; yields a ``callback(done, total)`` for library code to report progress."""
    with progress_bars(description) as (update,):
        yield update


@contextmanager
def progress_bars(*descriptions: str) -> Iterator[tuple[ProgressCallback, ...]]:
    """One rich display with a bar per description; yields their ``callback(done, total)`` in the same order.

    A terminal sees the bars move. Elsewhere rich draws them only once at the end, so each bar also prints a
    line ``description: done/total (elapsed)`` at most every ``PIPE_PROGRESS_SECONDS``.
    """
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:

        def updater(description: str) -> ProgressCallback:
            task = progress.add_task(description, total=None)
            started = last_line = time.monotonic()

            def update(done: int, total: int) -> None:
                nonlocal last_line
                progress.update(task, completed=done, total=total)
                now = time.monotonic()
                if not err_console.is_terminal and done < total and now - last_line >= PIPE_PROGRESS_SECONDS:
                    err_console.print(f"{plain(description)}: {done}/{total} ({now - started:.0f} s)", highlight=False)
                    last_line = now

            return update

        yield tuple(updater(description) for description in descriptions)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinite floats as None and numpy scalars as Python numbers: strict JSON."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(document: Any) -> None:
    """Print a JSON document on stdout (for --json output): strict JSON, NaN written as null, never wrapped."""
    typer.echo(json.dumps(json_safe(document), indent=2, ensure_ascii=False, allow_nan=False))


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display with one bar per named stage; yields ``callback(stage, done, total)``."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update
