"""`ecvl-router demo`: the main experiment end to end on the bundled, simulated demo benchmark."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, plain, progress_bar, stage_progress
from ecvl_router.cli.data import load_or_fail, print_summary
from ecvl_router.manifest import read_manifest


def demo_data(folder: Path, items: int, seed: int) -> None:
    """Generate the demo benchmark into ``folder`` unless it already holds the one with these settings."""
    from ecvl_router.data.demo import generate_demo, is_demo_output

    if is_demo_output(folder) and (read_manifest(folder) or {}).get("settings") == {"n_items": items, "seed": seed}:
        console.print(f"[dim]reusing the demo benchmark in {plain(folder)}[/]")
        return
    with progress_bar("generating demo benchmark") as progress:
        generate_demo(folder, n_items=items, seed=seed, progress=progress)


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder (data, caches, report)."),
    items: int = typer.Option(3000, "--items", min=100, help="Number of demo benchmark items."),
    seed: int = typer.Option(0, "--seed", help="Seed of the benchmark, the splits and the routers."),
    routers: str | None = typer.Option(None, "--routers", help="Comma-separated routers to compare.", show_default="the main table's"),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs of the neural routers.", show_default="50, the paper's"),
) -> None:
    """Generate the demo benchmark, embed it, train every router on three model pairs × three scenarios, write report/."""
    from ecvl_router.cli.options import load_extractor
    from ecvl_router.data.demo import DEMO_PAIRS
    from ecvl_router.data.summary import summarize
    from ecvl_router.experiments.main_table import MAIN_ROUTERS, ModelPair, run_pair
    from ecvl_router.features.extractor import ExtractorSettings
    from ecvl_router.report.main_report import headline, write_main_report
    from ecvl_router.learning.runs import rsd_features
    from ecvl_router.scenarios import SCENARIOS

    started = time.perf_counter()
    data_dir, cache_dir, report_dir = out / "data", out / "cache", out / "report"
    demo_data(data_dir, items, seed)
    rsd = load_or_fail(data_dir)
    print_summary(summarize(rsd))
    extractor = load_extractor(ExtractorSettings())
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache_dir, progress=progress)
    scenarios = list(SCENARIOS.values())
    names = [r.strip() for r in (routers or "").split(",") if r.strip()] or list(MAIN_ROUTERS)
    params = {name: {"epochs": epochs} for name in ("ecvl", "mlp", "mf")} if epochs else None
    results = []
    try:
        with stage_progress() as progress:
            for cloud, edge in DEMO_PAIRS:
                results.append(run_pair(rsd, ModelPair(cloud, edge), features, scenarios, routers=names, seed=seed,
                                        cache_dir=cache_dir, feature_identity=extractor.identity(),
                                        router_params=params, progress=progress))
    except ValueError as exc:
        fail(str(exc))
    notes = [f"Data: the simulated demo benchmark ({len(rsd.items)} items, seed {seed}); every figure here comes from simulated VLMs."]
    report = write_main_report(results, scenarios, report_dir, notes=notes)
    cached = sum(r.trained_from_cache for r in results)
    console.print(f"\n[green]report[/] {plain(report)} (Table 1: {plain(report_dir / 'table1.md')}); "
                  f"{cached} trained routers reused from the cache; {time.perf_counter() - started:.0f} s in all")
    console.print(f"[bold]Headline[/] ({plain(scenarios[0].name)} scenario, test split):")
    for line in headline(results, scenarios[0]):
        console.print(
            f"  {plain(line['pair'])}: {plain(line['router'])} keeps {line['edge_share']:.0%} of queries on the edge; APSP "
            f"{line['apsp']:.3f} vs {line['apsp_all_large']:.3f} for all-at-large ({line['apsp_drop_relative']:.1%} relative drop), "
            f"AIL {line['ail']:.2f} s vs {line['ail_all_large']:.2f} s"
        )
