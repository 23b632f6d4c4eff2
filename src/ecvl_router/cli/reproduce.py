"""`ecvl-router reproduce`: every table and figure of the paper on a Response Score Dataset, in one report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ecvl_router.cli.console import console, err_console, fail, plain, progress_bar
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.demo import demo_data
from ecvl_router.cli.options import CacheOption, EncodersOption

DEMO_ITEMS = 2000
QUICK_DEMO_ITEMS = 1000
DEMO_SEED = 0


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _cache_for(data: Path, cache_dir: Path | None) -> Path:
    """``--cache-dir``; else the ``cache`` folder beside an ``ecvl-router demo`` output's ``data``; else the default."""
    from ecvl_router.data.demo import is_demo_output
    from ecvl_router.learning.runs import default_cache_dir

    if cache_dir is not None:
        return cache_dir
    sibling = data.parent / "cache"
    if is_demo_output(data) and sibling.is_dir():
        return sibling
    return default_cache_dir()


@contextmanager
def _experiment_display() -> Iterator[tuple[Callable[[str, int, int], None], Callable[[str, int, int], None]]]:
    """Two bars: which experiment runs (k of n) and how far its current training or measurement is."""
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress:
        overall = progress.add_task("experiments", total=None)
        current = progress.add_task("", total=None)

        def on_experiment(name: str, index: int, total: int) -> None:
            progress.update(overall, description=f"[bold]{name}[/]", completed=index - 1, total=total)

        def on_stage(stage: str, done: int, total: int) -> None:
            progress.update(current, description=f"  {stage}", completed=done, total=total)

        yield on_experiment, on_stage
        progress.update(overall, description="[bold]experiments done[/]", completed=progress.tasks[0].total)


def reproduce(
    out: Path = typer.Option(..., "--out", help="Report folder: report.md, report.html, figures, CSV tables."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder (default: the bundled demo benchmark, generated into the cache)."),
    pairs: str | None = typer.Option(None, "--pairs", help="Model pairs CLOUD/EDGE,…; the first is the main pair (default: the demo's three)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds of Table 1 (mean ± std over seeds)."),
    other_seeds: int = typer.Option(1, "--other-seeds", min=1, help="Seeds of Tables 3, 4, 8 and the MES sweep (at most --seeds)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: one seed, 10 epochs, every other MES point, fewer timed queries."),
    holdout_sources: str | None = typer.Option(None, "--holdout-sources", help="Sources held out for Table 8, comma-separated."),
    mes: float | None = typer.Option(None, "--mes", help="MES of the scenarios (default: the paper's 6 on 1–10, carried to the dataset's scale)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs of the neural routers (default: 50, the paper's; 10 with --quick)."),
    items: int | None = typer.Option(None, "--items", min=100, help=f"Demo size without --data (default: {DEMO_ITEMS}; {QUICK_DEMO_ITEMS} with --quick)."),
    encoders: Path | None = EncodersOption,
    cache_dir: Path | None = CacheOption,
) -> None:
    """Run every experiment of the paper (Tables 1–4 and 8, Figures 2–12) and write one self-contained report."""
    from ecvl_router.cli.options import extractor_settings, load_extractor
    from ecvl_router.experiments.main_table import ModelPair
    from ecvl_router.experiments.reproduce import reproduce_settings, run_reproduce
    from ecvl_router.report.reproduce_report import write_reproduce_report
    from ecvl_router.learning.runs import default_cache_dir, rsd_features

    started = time.perf_counter()
    if data is None:
        n_items = items or (QUICK_DEMO_ITEMS if quick else DEMO_ITEMS)
        data = (cache_dir or default_cache_dir()) / "demo-data" / f"items-{n_items}-seed-{DEMO_SEED}"
        demo_data(data, n_items, DEMO_SEED)
    rsd = load_or_fail(data)
    cache = _cache_for(data, cache_dir)
    try:
        settings = reproduce_settings(
            rsd,
            pairs=[ModelPair.parse(text) for text in _split(pairs)] or None,
            seeds=seeds,
            other_seeds=other_seeds,
            quick=quick,
            holdout_sources=_split(holdout_sources) or None,
            mes=mes,
            epochs=epochs,
        )
    except ValueError as exc:
        fail(str(exc))
    console.print(f"[bold]{plain(rsd.info.name)}[/]: {len(rsd.items):,} items, pairs {plain(', '.join(p.label for p in settings.pairs))}; "
                  f"seeds {plain(list(settings.seeds))}; cache {plain(cache)}")
    extractor = load_extractor(extractor_settings(encoders))
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache, progress=progress)
    try:
        with _experiment_display() as (on_experiment, on_stage):
            results = run_reproduce(rsd, features, settings, cache_dir=cache, feature_identity=extractor.identity(),
                                    extractor=extractor, on_experiment=on_experiment, progress=on_stage)
    except ValueError as exc:
        fail(str(exc))
    finally:
        extractor.close()
    with progress_bar("writing the report") as progress:
        progress(0, 1)
        files = write_reproduce_report(results, rsd, out, wall_seconds=time.perf_counter() - started)
        progress(1, 1)
    console.print(
        f"[green]report[/] {plain(files.markdown)} and {plain(files.html)} ({len(files.figures)} figures, {len(files.tables)} CSV tables); "
        f"{results.ledger.trained} routers trained, {results.ledger.reused} reused from the cache; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
