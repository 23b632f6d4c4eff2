"""`ecvl-router data …`: import, export, validate, describe and generate Response Score Datasets, and turn captured
gateway traffic into one."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from ecvl_router.cli.console import console, fail, plain, print_json, progress_bar

app = typer.Typer(help="Response Score Datasets: import, export, validate, describe, generate the demo, build from a capture.",
                  no_args_is_help=True)


def load_or_fail(path: Path, *, decode_images: bool = False):
    """Load a dataset or exit with the validation report."""
    from ecvl_router.data import RSDValidationError, load_rsd

    try:
        return load_rsd(path, decode_images=decode_images)
    except (RSDValidationError, FileNotFoundError) as exc:
        fail(str(exc))


@app.command("validate")
def validate(path: Path = typer.Argument(..., help="Dataset folder (interchange or Parquet).")) -> None:
    """Check a dataset and list every problem with file, line and field; exit status 1 if any."""
    from ecvl_router.data import check_dataset

    try:
        rsd, problems = check_dataset(path, decode_images=True)
    except FileNotFoundError as exc:
        fail(str(exc))
    if problems:
        for problem in problems:
            console.print(str(problem), highlight=False, markup=False)
        fail(f"{path}: {len(problems)} problem(s) found")
    console.print(f"[green]ok[/] {plain(path)}: {len(rsd.items)} items, {len(rsd.responses)} responses, models: {plain(', '.join(rsd.models))}")


@app.command("import")
def import_(
    source: Path = typer.Argument(..., help="Interchange folder (dataset.json, items.jsonl, responses.jsonl, images/)."),
    out: Path = typer.Option(..., "--out", help="Destination folder for the native Parquet dataset."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty destination."),
) -> None:
    """Validate an interchange dataset and store it natively in Parquet with a manifest."""
    from ecvl_router.data import write_parquet

    rsd = load_or_fail(source, decode_images=True)
    try:
        write_parquet(rsd, out, force=force)
    except FileExistsError as exc:
        fail(str(exc))
    console.print(f"[green]imported[/] {len(rsd.items)} items and {len(rsd.responses)} responses → {plain(out)}")


@app.command("export")
def export(
    source: Path = typer.Argument(..., help="Dataset folder (Parquet or interchange)."),
    out: Path = typer.Option(..., "--out", help="Destination folder for the interchange format."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty destination."),
) -> None:
    """Write a dataset back in the JSONL interchange format."""
    from ecvl_router.data import write_interchange

    rsd = load_or_fail(source)
    try:
        write_interchange(rsd, out, force=force)
    except FileExistsError as exc:
        fail(str(exc))
    console.print(f"[green]exported[/] {len(rsd.items)} items → {plain(out)}")


def print_summary(summary: dict) -> None:
    """Render the Appendix A.4 statistics as tables."""
    console.print(
        f"[bold]{plain(summary['name'])}[/]: {summary['items']} items ({summary['text_only_items']} text-only), "
        f"{summary['responses']} responses, score scale {summary['score_scale'][0]:g}–{summary['score_scale'][1]:g}"
    )
    console.print(
        f"score mean {summary['score_mean']:.2f}, median {summary['score_median']:.2f} · latency mean "
        f"{summary['latency_mean']:.2f} s, median {summary['latency_p50']:.2f} s, P75 {summary['latency_p75']:.2f} s, "
        f"P90 {summary['latency_p90']:.2f} s, P99 {summary['latency_p99']:.2f} s"
    )
    counts = summary["items_per_source"]
    for title, key in (("model", "per_model"), ("source", "per_source")):
        table = Table(title=f"per {title}")
        for column in (title, "items" if key == "per_source" else "responses", "score mean", "score median", "latency mean [s]", "latency median [s]"):
            table.add_column(column, justify="left" if column == title else "right")
        for name, row in summary[key].items():
            n = counts.get(name, 0) if key == "per_source" else int(row["responses"])
            table.add_row(
                plain(name), str(n), f"{row['score_mean']:.2f}", f"{row['score_median']:.1f}", f"{row['latency_mean']:.2f}", f"{row['latency_median']:.2f}"
            )
        console.print(table)


@app.command("info")
def info(
    path: Path = typer.Argument(..., help="Dataset folder (interchange or Parquet)."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Counts per source and model, score and latency statistics (mean, median, P75/P90/P99), per-model and per-source means."""
    from ecvl_router.data.summary import summarize

    summary = summarize(load_or_fail(path))
    print_json(summary) if as_json else print_summary(summary)


@app.command("demo")
def demo(
    out: Path = typer.Option(..., "--out", help="Destination folder (interchange format)."),
    items: int = typer.Option(3000, "--items", min=10, help="Number of benchmark items."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same dataset)."),
) -> None:
    """Generate the bundled, simulated multimodal demo benchmark (seven task families, eight simulated VLMs)."""
    from ecvl_router.data.demo import generate_demo
    from ecvl_router.data.summary import summarize

    started = time.perf_counter()
    try:
        with progress_bar("generating demo benchmark") as progress:
            generate_demo(out, n_items=items, seed=seed, progress=progress)
    except FileExistsError as exc:
        fail(str(exc))
    console.print(f"[green]wrote[/] simulated demo benchmark to {plain(out)} in {time.perf_counter() - started:.1f} s")
    print_summary(summarize(load_or_fail(out)))


@app.command("from-capture")
def from_capture(
    capture: Path = typer.Argument(..., help="Capture folder written by the gateway (its capture.dir)."),
    out: Path = typer.Option(..., "--out", help="Collection folder to write or bring up to date; judge it next."),
    source: str = typer.Option("capture", "--source", help="The items' source (benchmark) name."),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: the folder name)."),
) -> None:
    """Turn captured gateway traffic into a dataset to judge: items with images, both models' answers, feedback as human ratings."""
    import sqlite3

    from ecvl_router.capture_store import CaptureStoreError
    from ecvl_router.collect.benchmarks import BenchmarkError
    from ecvl_router.collect.from_capture import HUMAN_RATINGS_FILE, dataset_from_capture

    if not source.strip():
        fail("--source must not be empty")
    try:
        with progress_bar("reading captures") as progress:
            report = dataset_from_capture(capture, out, source=source, name=name, on_progress=progress)
    except (CaptureStoreError, BenchmarkError) as exc:
        fail(str(exc))
    except sqlite3.DatabaseError as exc:
        fail(f"{capture}: the capture database cannot be read ({exc})")
    console.print(
        f"[green]wrote[/] {report.items} items to {plain(out)}: {report.served} served and {report.shadow} shadow answers "
        f"({report.shadow_failed} shadow calls failed, {report.without_shadow} captures without a shadow answer), "
        f"{report.ratings} feedback ratings in {HUMAN_RATINGS_FILE}",
        highlight=False,
    )
    console.print(f"next: [bold]ecvl-router judge --data {plain(out)} --judge judge.yaml[/], then "
                  f"[bold]ecvl-router agreement --judge {plain(out)} --human {plain(Path(out) / HUMAN_RATINGS_FILE)}[/]")
