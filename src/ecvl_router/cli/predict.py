"""`ecvl-router predict`: score the items of any folder with a trained router bundle, without retraining."""

from __future__ import annotations

from pathlib import Path

import typer

from ecvl_router.cli.console import console, err_console, fail, plain, progress_bar
from ecvl_router.cli.options import CacheOption, load_extractor
from ecvl_router.data.items import read_items
from ecvl_router.data.problems import RSDValidationError
from ecvl_router.features.extractor import ExtractorSettings
from ecvl_router.learning.bundle import BundleError, load_bundle
from ecvl_router.learning.prediction import (
    item_features,
    output_format,
    prediction_table,
    scenario_settings,
    write_predictions,
)
from ecvl_router.learning.runs import default_cache_dir

SHOWN_PROBLEMS = 10
"""Problems listed in the warning summary; the error column of the output has all of them."""


def predict(
    run_dir: Path = typer.Argument(..., help="Run folder written by `ecvl-router train`."),
    data: Path = typer.Option(..., "--data", help="Folder with items.jsonl (or items.parquet) and its images; no responses needed."),
    out: Path = typer.Option(..., "--out", help="Output table: .csv, or .parquet."),
    mes: float | None = typer.Option(None, "--mes", help="Serve another MES than the scenarios' (ecvl-multi bundles)."),
    edge: str | None = typer.Option(None, "--edge", help="Another edge model of the training data (ecvl-multi bundles)."),
    cloud: str | None = typer.Option(None, "--cloud", help="Another cloud model of the training data (ecvl-multi bundles)."),
    cache_dir: Path | None = CacheOption,
    force: bool = typer.Option(False, "--force", help="Replace an existing output table."),
) -> None:
    """Score every item of a folder with a trained bundle: p and each scenario's route, one row per item (no retraining)."""
    try:
        output_format(out)
        trained = load_bundle(run_dir)
        items = read_items(data)
    except (BundleError, FileNotFoundError, RSDValidationError, ValueError) as exc:
        fail(str(exc))
    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    extractor = load_extractor(ExtractorSettings(**trained.manifest["settings"]["extractor"]))
    probe = extractor.extract_one("Is this query routable?", None)
    try:  # another MES or pair fails here, on one query, before the folder is embedded
        for name in trained.scenario_names:
            trained.decide(probe, name, mes=mes, edge=edge, cloud=cloud)
    except (KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    with progress_bar("embedding items") as progress:
        features, undecodable = item_features(items, extractor, cache_dir=cache_dir or default_cache_dir(), progress=progress)
    table = prediction_table(trained, items, features, undecodable, mes=mes, edge=edge, cloud=cloud)
    failed = table[table["error"].notna()]
    if len(failed):
        shown = "\n".join(f"  {plain(error)}" for error in failed["error"].head(SHOWN_PROBLEMS))
        more = f"\n  … and {len(failed) - SHOWN_PROBLEMS} more" if len(failed) > SHOWN_PROBLEMS else ""
        err_console.print(f"[yellow]warning:[/] {len(failed)} of {len(table)} items of {plain(items.path)} could not be scored:\n"
                          f"{shown}{more}", highlight=False, soft_wrap=True)
    if len(failed) == len(table):
        fail(f"no item of {items.path} could be scored; nothing written")
    settings = scenario_settings(trained, mes=mes, edge=edge, cloud=cloud)
    write_predictions(table, out, run_dir=run_dir, items=items, settings=settings)
    console.print(f"[green]scored[/] {len(table) - len(failed)} of {len(table)} items with {plain(trained.label)} → {plain(out)}"
                  + (" (unscored items carry their problem in the error column)" if len(failed) else ""), highlight=False)
    for name, entry in settings["scenarios"].items():
        share = float((table[f"route_{name}"] == "edge").sum()) / (len(table) - len(failed))
        console.print(f"  {plain(name)}: {share:.1%} to the edge (τ = {entry['tau']:.2f}, MES {entry['mes']:g})", highlight=False)
