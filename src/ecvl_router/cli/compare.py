"""`ecvl-router evaluate-routers`: repeated stratified k-fold comparison of routers on one model pair."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, plain, progress_bar
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.options import CacheOption, EncodersOption, extractor_settings, load_extractor, scenarios_on_one_mes
from ecvl_router.labels import LABEL_RULES
from ecvl_router.scenarios import SCENARIOS


def evaluate_routers(
    data: Path = typer.Option(..., "--data", help="Dataset folder (interchange or Parquet)."),
    edge: str = typer.Option(..., "--edge", help="Edge (small) model name as in the dataset."),
    cloud: str = typer.Option(..., "--cloud", help="Cloud (large) model name as in the dataset."),
    out: Path = typer.Option(..., "--out", help="Report folder: report.md, summary.csv, folds.csv, rcs.png."),
    routers: str | None = typer.Option(None, "--routers", help="Comma-separated ROUTER[:RECIPE], recipe split (default), oof or bag (seed bagging of the split recipe).", show_default="linear,linear:oof,ecvl,ecvl-multi:oof,mlp,gbdt,mf,random"),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds per repetition."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repetitions of the k-fold partition."),
    scenario: list[str] = typer.Option(list(SCENARIOS), "--scenario", help="Preset (quality, efficiency, speed) or YAML file; repeatable."),
    mes: float | None = typer.Option(None, "--mes", help="Minimal Expectation Score for every scenario (dataset scale)."),
    label_rule: str = typer.Option("mes", "--label-rule", help=f"Competence labels: {', '.join(LABEL_RULES)}."),
    k: float = typer.Option(1, "--k", help="Margin of win-soft(k)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs of every neural router (default: each router's own)."),
    inner_folds: int = typer.Option(5, "--inner-folds", min=2, help="Inner folds of the oof recipe."),
    calibration: str = typer.Option("isotonic", "--calibration", help="Calibration of the oof and bag recipes: none, platt, isotonic."),
    fallback_z: float = typer.Option(1.0, "--fallback-z", help="oof recipe: keep the router only if it beats the better trivial policy by this many standard errors out of fold (negative: never fall back)."),
    members: int = typer.Option(5, "--members", min=1, help="Members of the bag recipe (seeds and validation parts)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the routers."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Folds trained in parallel worker processes (one CPU thread each)."),
    encoders: Path | None = EncodersOption,
    cache_dir: Path | None = CacheOption,
) -> None:
    """Compare routers by repeated k-fold cross-validation: RCS with confidence intervals, headroom captured, paired gain over the best trivial policy."""
    from ecvl_router.experiments.router_comparison import DEFAULT_POLICIES, compare_routers
    from ecvl_router.report.crossval_report import write_crossval_report
    from ecvl_router.learning.router_cv import CVSettings, PolicySpec
    from ecvl_router.routers import router_class, router_hyperparameters
    from ecvl_router.learning.runs import default_cache_dir, rsd_features

    rsd = load_or_fail(data)
    scenarios = scenarios_on_one_mes(scenario, mes, rsd)
    try:
        policies = [PolicySpec.parse(text) for text in (routers.split(",") if routers else DEFAULT_POLICIES)]
    except ValueError as exc:
        fail(str(exc))
    trained_in_epochs = {p.router for p in policies if "epochs" in router_hyperparameters(router_class(p.router))}
    settings = CVSettings(
        seed=seed,
        router_params={name: {"epochs": epochs} for name in trained_in_epochs} if epochs else {},
        inner_folds=inner_folds,
        calibration=calibration,
        fallback_z=None if fallback_z < 0 else fallback_z,
        members=members,
    )
    started = time.perf_counter()
    extractor = load_extractor(extractor_settings(encoders))
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache_dir or default_cache_dir(), progress=progress)
    extractor.close()
    try:
        with progress_bar(f"{folds}×{repeats} folds, {len(policies)} routers each") as progress:
            comparison = compare_routers(rsd, features, edge=edge, cloud=cloud, scenarios=scenarios, policies=policies,
                                         n_folds=folds, n_repeats=repeats, rule=label_rule, k=k, settings=settings,
                                         progress=progress, jobs=jobs)
    except (KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    elapsed = time.perf_counter() - started
    title = f"{rsd.info.name}: {edge} (edge) / {cloud} (cloud)"
    described = {
        "queries": comparison.n_queries, "folds": f"{folds} × {repeats} repeats", "MES": scenarios[0].mes,
        "label rule": label_rule, "routers": ", ".join(p.label for p in policies),
        "oof recipe": f"{inner_folds} inner folds, {calibration} calibration, fallback at {settings.fallback_z} SE",
        **({"bag recipe": f"{members} members, {calibration} calibration, τ out of bag"} if any(p.recipe == "bag" for p in policies) else {}),
        "seed": seed, "wall time": f"{elapsed:.0f} s with {jobs} worker process(es)",
    }
    report = write_crossval_report(comparison.folds, comparison.summary, out, title=title, settings=described)
    console.print(f"[green]report[/] {plain(report)} ({elapsed:.0f} s)")
    for name, block in comparison.summary.groupby("scenario", sort=False):
        top = block[~block["policy"].isin(["oracle", "bayes"])].sort_values("rcs", ascending=False).iloc[0]
        console.print(f"  {plain(name)}: highest mean RCS {top['policy']} {top['rcs']:.4f} [{top['rcs_low']:.4f}, {top['rcs_high']:.4f}], "
                      f"paired gain over {top['best_trivial']} {top['gain']:+.4f} [{top['gain_low']:+.4f}, {top['gain_high']:+.4f}] "
                      "(intervals of the other routers in the report)")
