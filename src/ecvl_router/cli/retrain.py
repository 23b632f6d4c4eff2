"""`ecvl-router retrain`: train a challenger on the base data plus judged captured traffic, and compare it with the champion."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, plain, progress_bar, progress_bars
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.options import CacheOption


def retrain(
    champion: Path = typer.Argument(..., help="Run folder of the serving router (`ecvl-router train`)."),
    capture: Path = typer.Option(..., "--capture", help="Judged capture dataset (`data from-capture`, then `judge`)."),
    out: Path = typer.Option(..., "--out", help="Report folder: report.md, summary.csv, folds.csv, guarantees.csv, contest.png, verdict.json, challenger/."),
    data: Path | None = typer.Option(None, "--data", help="The champion's dataset if it moved since training."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds over the captured queries."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repetitions of the folds."),
    margin: float = typer.Option(0.005, "--margin", min=0, help="Non-inferiority margin in RCS: promote only if no interval reaches below −margin."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the challengers."),
    cache_dir: Path | None = CacheOption,
    force: bool = typer.Option(False, "--force", help="Replace an existing report folder."),
) -> None:
    """Champion against challenger on captured queries neither trained on: paired RCS intervals, guarantees, a verdict."""
    from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
    from ecvl_router.learning.bundle import BundleError, save_bundle
    from ecvl_router.learning.champion import decide, guarantee_results, run_contest, summarise_contest
    from ecvl_router.learning.crossval import repeated_stratified_folds
    from ecvl_router.learning.drift import reference_histograms
    from ecvl_router.learning.retrain import base_training_set, build_contest, capture_training_set, train_challenger
    from ecvl_router.learning.runs import default_cache_dir, open_run
    from ecvl_router.manifest import write_json_atomic
    from ecvl_router.report.contest_report import contest_figure, contest_markdown

    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    cache = cache_dir or default_cache_dir()
    captured = load_or_fail(capture)
    try:
        with progress_bar("loading the champion and its data") as progress:
            run = open_run(champion, data=data, cache_dir=cache, progress=progress)
        base_rsd = load_or_fail(data or Path(run.manifest["inputs"]["data"]))
        extractor = FeatureExtractor.from_settings(ExtractorSettings(**run.manifest["settings"]["extractor"]))
        with progress_bar("embedding captured queries") as progress:
            captured_set = capture_training_set(run, captured, extractor, cache_dir=cache, progress=progress)
        extractor.close()
        contest = build_contest(run, base_training_set(run, base_rsd), captured_set)
        cv_folds = repeated_stratified_folds(captured_set.strata, n_folds=folds, n_repeats=repeats, seed=seed)
    except (BundleError, FileNotFoundError, KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    scenarios = [run.trained.choice(name).scenario for name in run.trained.scenario_names]
    started = time.perf_counter()
    with progress_bars(f"challengers in {len(cv_folds)} folds", "final challenger") as (fold_progress, final_progress):
        result = run_contest(contest, scenarios, cv_folds, seed=seed, progress=fold_progress)
        challenger = train_challenger(contest, scenarios, seed=seed, progress=final_progress)
    summary = summarise_contest(result.rows, 1 / (folds - 1))
    guarantees = guarantee_results(result, contest, scenarios, seed=seed)
    verdict = decide(summary, guarantees, margin=margin)
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(challenger, out / "challenger", overwrite=True, extra_manifest={
        "inputs": {"data": run.manifest["inputs"]["data"], "capture": str(captured.root.resolve()),
                   "champion": str(champion.resolve())},
        "settings": {key: value for key, value in run.manifest["settings"].items()
                     if key not in ("router", "params", "seed", "edge_share", "recipe")},
        "score_scale": run.manifest.get("score_scale"),
        "p_reference": reference_histograms(challenger, run.features.take(run.task.part("test")), "test"),
    })
    (out / "challenger" / "split.json").write_text((champion / "split.json").read_text(encoding="utf-8"), encoding="utf-8")
    result.rows.to_csv(out / "folds.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    guarantees.to_csv(out / "guarantees.csv", index=False)
    contest_figure(summary, out / "contest.png", margin=margin)
    context = [f"champion: {champion} ({run.trained.label}, recipe {contest.recipe})",
               f"pair: edge {run.task.pair.edge}, cloud {run.task.pair.cloud}; MES {run.task.mes:g}",
               f"base training queries: {len(contest.base)}; judged captured queries: {len(captured_set)} ({captured.root})",
               f"{repeats} × {folds}-fold stratified cross-validation over the captured queries, seed {seed}",
               f"non-inferiority margin: {margin:g} RCS"]
    (out / "report.md").write_text(contest_markdown(summary, guarantees, verdict, context=context), encoding="utf-8")
    write_json_atomic(out / "verdict.json", {"verdict": verdict.word, "reasons": verdict.reasons, "margin": margin,
                                             "challenger": str((out / "challenger").resolve())})
    console.print(f"[bold]{verdict.word}[/] the challenger ({time.perf_counter() - started:.0f} s) → {plain(out)}")
    for reason in verdict.reasons:
        console.print(f"  {plain(reason)}")
