"""`ecvl-router embed | train | evaluate | route`: featurise, train a router bundle, evaluate it, route one query."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from ecvl_router.learning.bundle import BundleError, save_bundle
from ecvl_router.cli.console import ProgressCallback, console, fail, plain, print_json, progress_bar
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.options import CacheOption, EncodersOption, extractor_settings, load_extractor, scenarios_on_one_mes
from ecvl_router.data.rsd import PairView
from ecvl_router.learning.evaluation import REFERENCE_POLICIES, evaluate_decisions, reference_decisions
from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LABEL_RULES
from ecvl_router.learning.crossval import fold_strata
from ecvl_router.learning.curve_summary import curve_entries, summarise_curves
from ecvl_router.learning.curves import TARGETS, CostQuality, cost_quality, oracle_cost_quality, target_key
from ecvl_router.learning.drift import reference_histograms
from ecvl_router.learning.oof import INNER_FOLDS
from ecvl_router.learning.recipes import DEFAULT_RECIPE, DEFAULT_ROUTER, RECIPES, RecipeSettings, train_with_recipe
from ecvl_router.learning.training_set import TrainingSet, take_targets
from ecvl_router.learning.risk_control import certified, quality_drop
from ecvl_router.routers import TRAINABLE_ROUTER_NAMES, Router, ScoreTargets, create_router, router_class, router_hyperparameters
from ecvl_router.learning.routing_task import PARTS, RoutingTask, build_task, score_targets
from ecvl_router.learning.runs import RunContext, default_cache_dir, open_run, rsd_features, run_settings, write_split
from ecvl_router.scenarios import SCENARIOS, Scenario
from ecvl_router.learning.training import ScenarioChoice, TrainedRouter, search_threshold
from ecvl_router.report.curve_report import cost_quality_figure, measure_title, measures_agree

SUMMARY_KEYS = ("apsp", "ca", "ail", "rcs", "accuracy", "pgr", "time_saving", "time_saving_share", "token_saving", "token_saving_share")
PROPORTIONS = ("apsp", "ca", "rcs", "accuracy", "pgr", "time_saving_share", "token_saving_share")
HEADERS = {"ail": "ail (s)", "time_saving": "time saved (s)", "time_saving_share": "time saved share",
           "token_saving": "tokens saved", "token_saving_share": "tokens saved share"}
"""Column names of ``evaluate``'s table; savings are totals over the evaluated queries against all-at-large."""


def embed(
    data: Path = typer.Argument(..., help="Dataset folder."),
    encoders: Path | None = EncodersOption,
    cache_dir: Path | None = CacheOption,
) -> None:
    """Compute and cache the text, image and statistics features of every item (re-runs compute nothing twice)."""
    rsd = load_or_fail(data)
    extractor = load_extractor(extractor_settings(encoders))
    started = time.perf_counter()
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache_dir or default_cache_dir(), progress=progress)
    console.print(
        f"[green]features[/] for {len(features)} items: text {features.text.shape[1]}-d, image {features.image.shape[1]}-d, "
        f"{features.stats.shape[1]} statistics ({time.perf_counter() - started:.1f} s)"
    )


def default_recipe(scenarios: list[Scenario], edge_share: float | None) -> str:
    """The recipe of a run that names none: ``DEFAULT_RECIPE``, unless only the split recipe can train it (an edge-share
    calibration, or guaranteed scenarios beside RCS ones, whose promise a trivial-policy fallback would void)."""
    return "split" if edge_share is not None or len({s.guaranteed for s in scenarios}) > 1 else DEFAULT_RECIPE


def train(
    data: Path = typer.Option(..., "--data", help="Dataset folder (interchange or Parquet)."),
    edge: str = typer.Option(..., "--edge", help="Edge (small) model name as in the dataset."),
    cloud: str = typer.Option(..., "--cloud", help="Cloud (large) model name as in the dataset."),
    out: Path = typer.Option(..., "--out", help="Run folder to write the router bundle into."),
    scenario: list[str] = typer.Option(list(SCENARIOS), "--scenario", help="Preset (quality, efficiency, speed) or YAML file; repeatable."),
    mes: float | None = typer.Option(None, "--mes", help="Minimal Expectation Score for every scenario (dataset scale)."),
    label_rule: str = typer.Option("mes", "--label-rule", help=f"Competence labels: {', '.join(LABEL_RULES)}."),
    k: float = typer.Option(1, "--k", help="Margin of win-soft(k)."),
    router: str = typer.Option(DEFAULT_ROUTER, "--router", help=f"Router: {', '.join(TRAINABLE_ROUTER_NAMES)} (ecvl: the paper's)."),
    recipe: str | None = typer.Option(None, "--recipe", help="split: best epoch and τ on the validation split (the paper's); oof: out-of-fold ensemble over train+validation with calibrated τ and a fallback to the better trivial policy; bag: seed bagging of the split recipe, τ on out-of-bag predictions. Default: oof, or split with --edge-share or with guaranteed and RCS scenarios in one run.", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the router."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs of neural routers.", show_default="50"),
    edge_share: float | None = typer.Option(None, "--edge-share", min=0, max=1, help="Calibrate τ so this share of validation queries goes to the edge instead of maximising RCS."),
    holdout_sources: str | None = typer.Option(None, "--holdout-sources", help="Comma-separated sources used only as the test split."),
    encoders: Path | None = EncodersOption,
    cache_dir: Path | None = CacheOption,
    force: bool = typer.Option(False, "--force", help="Replace an existing run folder."),
) -> None:
    """Train a router for one model pair and one or more scenarios sharing an MES; writes a bundle with τ* per scenario."""
    rsd = load_or_fail(data)
    scenarios = scenarios_on_one_mes(scenario, mes, rsd)
    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    recipe = recipe or default_recipe(scenarios, edge_share)
    if recipe not in RECIPES:
        fail(f"unknown recipe {recipe!r}; use {' or '.join(RECIPES)}")
    if recipe != "split" and edge_share is not None:
        fail(f"--edge-share calibrates τ on the validation split of the split recipe; it does not apply to --recipe {recipe}")
    if recipe == "oof" and len({s.guaranteed for s in scenarios}) > 1:
        fail("under --recipe oof, train guaranteed scenarios (max_quality_drop) in a run of their own: "
             "the fallback to a trivial policy that RCS scenarios get would void their promise")
    try:
        task = build_task(rsd, edge, cloud, mes=scenarios[0].mes, rule=label_rule, k=k, seed=seed,
                          holdout_sources=holdout_sources.split(",") if holdout_sources else ())
        takes_epochs = "epochs" in router_hyperparameters(router_class(router))
        if epochs and not takes_epochs:
            console.print(f"[yellow]note[/] {plain(router)} is not trained in epochs; --epochs is ignored")
        model = create_router(router, random_state=seed, **({"epochs": epochs} if epochs and takes_epochs else {}))
    except (KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    if task.pair.n_excluded:
        console.print(f"[yellow]note[/] {task.pair.n_excluded} items lack a response from {plain(repr(edge))} or {plain(repr(cloud))} and are left out")
    if task.pair.grouped:
        console.print(f"split grouped: each of {task.pair.n_groups} groups lies in one part "
                      f"(train/val/test {'/'.join(map(str, task.split.sizes()))} items)")
    settings = extractor_settings(encoders)
    extractor = load_extractor(settings)
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache_dir or default_cache_dir(), item_ids=task.pair.item_ids, progress=progress)
    targets = score_targets(rsd, task) if router_class(router).learns_scores else task.labels
    started = time.perf_counter()
    with progress_bar(f"training {router} ({recipe})") as progress:
        trained = _fit(model, recipe, task, features, targets, scenarios, edge_share, progress)
    held_out = "test" if len(task.part("test")) else "val"
    reference = reference_histograms(trained, features.take(task.part(held_out)), held_out)
    save_bundle(trained, out, extra_manifest={**run_settings(rsd, task, settings, extractor.identity()), "p_reference": reference},
                overwrite=True)
    write_split(out, task)
    console.print(f"[green]trained[/] {router} on {len(task.part('train'))} items in {time.perf_counter() - started:.1f} s → {plain(out)}")
    for name, choice in trained.choices.items():
        if choice.scenario.guaranteed:
            console.print(f"  {plain(name)}: {_guarantee_line(choice)}")
        elif choice.fallback:
            console.print(f"  {plain(name)}: falls back to {choice.fallback} (the router did not beat it out of fold)")
        else:
            console.print(f"  {plain(name)}: τ* = {choice.tau:.2f}, validation RCS* = {choice.rcs:.4f} (epoch {choice.epoch + 1})")


def _fit(
    model: Router,
    recipe: str,
    task: RoutingTask,
    features: QueryFeatures,
    targets: np.ndarray | ScoreTargets,
    scenarios: list[Scenario],
    edge_share: float | None,
    progress: ProgressCallback,
) -> TrainedRouter:
    """Train with the paper's recipe (train part, validation part) or out of fold over train + validation."""
    rows = np.sort(np.concatenate([task.part("train"), task.part("val")]))
    strata = fold_strata(task.pair.sources[rows], task.labels[rows], INNER_FOLDS)
    pair = task.pair.take(rows)
    data = TrainingSet(features.take(rows), take_targets(targets, rows), task.labels[rows], pair, strata, pair.groups)
    settings = RecipeSettings(
        validation=np.searchsorted(rows, task.part("val")), edge_share=edge_share,
        fallback_z=None if scenarios[0].guaranteed else 1.0,  # risk control already falls back to all-cloud
    )
    params = model.get_params()
    return train_with_recipe(recipe, lambda seed: type(model)(**{**params, "random_state": seed}), data, scenarios,
                             seed=model.random_state, settings=settings, progress=progress)


def _guarantee_line(choice: ScenarioChoice) -> str:
    """What training certified for a guaranteed scenario, in one line."""
    scenario, metrics = choice.scenario, choice.threshold.metrics
    if not certified(choice.tau):
        return (f"no τ certified a quality drop ≤ {scenario.max_quality_drop:g} at confidence {scenario.confidence:g} "
                "on the calibration data: every query goes to the cloud")
    return (f"τ = {choice.tau:.2f} certifies a quality drop ≤ {scenario.max_quality_drop:g} at confidence "
            f"{scenario.confidence:g} (calibration drop {metrics['quality_drop']:.4f}, p = {metrics['drop_pvalue']:.3g}, "
            f"edge share {metrics['ca']:.3f})")


def evaluate(
    run_dir: Path = typer.Argument(..., help="Run folder written by `ecvl-router train`."),
    split: str = typer.Option("test", "--split", help=f"Split part: {', '.join(PARTS)}."),
    data: Path | None = typer.Option(None, "--data", help="Dataset folder if it moved since training."),
    cache_dir: Path | None = CacheOption,
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    figure: Path | None = typer.Option(None, "--figure", dir_okay=False, help="Write the cost–quality curves of the split as PNG."),
) -> None:
    """APSP, CA, AIL, RCS, accuracy, PGR and savings per scenario, next to all-at-large, all-at-small, the oracle and (demo data) bayes;
    cost–quality curves: curve share and edge share kept at 95 % and 90 % of all-at-cloud quality, next to random routing's."""
    try:
        with progress_bar("loading run and features") as progress:
            run = open_run(run_dir, data=data, cache_dir=cache_dir or default_cache_dir(), progress=progress)
        view, labels = run.task.view(split)
    except (BundleError, FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))
    features = run.features.take(run.task.part(split))
    bayes = _bayes_policy(run, split, data or Path(run.manifest["inputs"]["data"]))
    results, rankings = {}, []
    for name in run.trained.scenario_names:
        scenario = run.trained.choice(name).scenario
        to_edge, p, tau = run.trained.decide(features, name)
        rankings += [_ranking_row(scenario, run.trained.label, cost_quality(p, view.score_edge, view.score_cloud, scenario.mes)),
                     _ranking_row(scenario, "oracle", oracle_cost_quality(view.score_edge, view.score_cloud, scenario.mes))]
        rows = {run.trained.label: {"tau": tau, **evaluate_decisions(to_edge, view, labels, scenario)}}
        if scenario.guaranteed:
            rows[run.trained.label]["quality_drop"] = quality_drop(to_edge, view, scenario.mes)
        for policy in REFERENCE_POLICIES:
            rows[policy] = evaluate_decisions(reference_decisions(policy, labels), view, labels, scenario)
        if bayes is not None:
            p_val, pair_val, p_split = bayes
            bayes_tau = search_threshold(p_val, pair_val, scenario).tau
            rows["bayes"] = {"tau": bayes_tau, **evaluate_decisions(p_split >= bayes_tau, view, labels, scenario)}
            rankings.append(_ranking_row(scenario, "bayes", cost_quality(p_split, view.score_edge, view.score_cloud, scenario.mes)))
        results[name] = rows
    curves = summarise_curves(pd.DataFrame(rankings), test_share=0.0)
    if figure is not None:
        cost_quality_figure(curves.points, figure, title=f"{run.trained.label}: {split} split, {len(view)} queries")
    promises = {name: run.trained.choice(name).scenario.promise() for name in results if run.trained.choice(name).scenario.guaranteed}
    if as_json:
        print_json({"split": split, "n": len(view), "scenarios": results, "promises": promises, "curves": _curves_json(curves.shares)})
        return
    for name, rows in results.items():
        table = Table(title=f"{plain(name)} scenario — {split} split, {len(view)} queries",
                      caption="savings: totals over these queries against all-at-large (shares of its total)")
        table.add_column("policy")
        for key in ("tau", *SUMMARY_KEYS):
            table.add_column(HEADERS.get(key, key), justify="right")
        for policy, metrics in rows.items():
            cells = [f"{metrics['tau']:.2f}" if "tau" in metrics else "–"]
            cells += [f"{metrics.get(key, float('nan')):.{4 if key in PROPORTIONS else 2}f}" for key in SUMMARY_KEYS]
            table.add_row(policy, *cells)
        console.print(table)
        if name in promises:
            drop, bound = rows[run.trained.label]["quality_drop"], run.trained.choice(name).scenario.max_quality_drop
            console.print(f"  promise: {promises[name]}\n  realised quality drop on the {split} split: {drop:.4f} "
                          f"({'within' if drop <= bound else 'above'} {bound:g})")
        console.print(_curve_table(curves.shares[curves.shares["scenario"] == name], name, merged=measures_agree(curves.points)))
    if figure is not None:
        console.print(f"[green]cost–quality curves[/] {plain(figure)}")


def _ranking_row(scenario: Scenario, policy: str, curve: CostQuality) -> dict[str, object]:
    """A row of ``summarise_curves`` for one ranking on the evaluated split (one fold)."""
    return {"repeat": 0, "fold": 0, "scenario": scenario.name, "mes": scenario.mes, "policy": policy, **curve_entries(curve)}


def _curves_json(shares: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{scenario: {measure: {policy: {curve_share, edge_95, edge_90}}}}."""
    keys = ("curve_share", *(target_key(t) for t in TARGETS))
    nested: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for row in shares.to_dict("records"):
        nested.setdefault(row["scenario"], {}).setdefault(row["measure"], {})[row["policy"]] = {k: row[k] for k in keys}
    return nested


def _curve_table(shares: pd.DataFrame, scenario: str, *, merged: bool) -> Table:
    """Curve share and edge share kept at each target, per policy and quality measure (``merged``: the mean score only,
    standing for APSP too)."""
    table = Table(title=f"{plain(scenario)} scenario — cost–quality curves",
                  caption="edge share kept: the largest share of queries at the edge at which quality stays ≥ the target share of all-at-cloud quality")
    table.add_column("policy")
    measures = ["score"] if merged else list(dict.fromkeys(shares["measure"]))
    for measure in measures:
        title = measure_title(measure, shares["mes"].iloc[0], merged=merged)
        table.add_column(f"curve share ({title})", justify="right")
        for target in TARGETS:
            table.add_column(f"edge share ≥ {100 * target:.0f} % ({title})", justify="right")
    for policy in dict.fromkeys(shares["policy"]):
        by_measure = shares[shares["policy"] == policy].set_index("measure")
        cells = [f"{by_measure.loc[m, key]:.3f}" for m in measures for key in ("curve_share", *(target_key(t) for t in TARGETS))]
        table.add_row(policy, *cells)
    return table


def _bayes_policy(run: RunContext, split: str, root: Path) -> tuple[np.ndarray, PairView, np.ndarray] | None:
    """The simulation's true P(edge competent | visible) on the validation split (with its pair view, for τ) and on the
    evaluated split (demo data only)."""
    from ecvl_router.data.demo.truth import bayes_probabilities, load_truth

    truth = load_truth(root)
    if truth is None:
        return None
    task = run.task
    p = bayes_probabilities(truth, task.pair, mes=task.mes, rule=task.rule, k=task.k)
    return p[task.part("val")], task.view("val")[0], p[task.part(split)]


def route(
    run_dir: Path = typer.Argument(..., help="Run folder written by `ecvl-router train`."),
    question: str = typer.Option(..., "--question", help="The user's question."),
    image: Path | None = typer.Option(None, "--image", exists=True, dir_okay=False, help="Image file (optional)."),
    scenario: str | None = typer.Option(None, "--scenario", help="Scenario of the bundle.", show_default="its first"),
    mes: float | None = typer.Option(None, "--mes", help="Serve another MES than the scenario's (ecvl-multi bundles)."),
    edge: str | None = typer.Option(None, "--edge", help="Another edge model of the training data (ecvl-multi bundles)."),
    cloud: str | None = typer.Option(None, "--cloud", help="Another cloud model of the training data (ecvl-multi bundles)."),
    source: str | None = typer.Option(None, "--source", help="The query's source, as the training data's `source` field names it (read by lookup and profile)."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Route one query: edge or cloud, P(edge competent), τ, and how long the decision took."""
    from ecvl_router.learning.bundle import load_bundle
    from ecvl_router.features.extractor import ExtractorSettings

    try:
        trained = load_bundle(run_dir)
    except BundleError as exc:
        fail(str(exc))
    name = scenario or trained.scenario_names[0]
    if name not in trained.choices:
        fail(f"unknown scenario {name!r}; this bundle knows {', '.join(trained.scenario_names)}")
    extractor = load_extractor(ExtractorSettings(**trained.manifest["settings"]["extractor"]))
    extractor.extract_one("warm-up", None)
    started = time.perf_counter()
    try:
        features = extractor.extract_one(question, image).with_sources([source])
        to_edge, p, tau = trained.decide(features, name, mes=mes, edge=edge, cloud=cloud)
    except (KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    elapsed_ms = (time.perf_counter() - started) * 1000
    task = trained.manifest["settings"]["task"]
    edge_model, cloud_model = edge or task["edge"], cloud or task["cloud"]
    decision = {"route": "edge" if to_edge[0] else "cloud", "model": edge_model if to_edge[0] else cloud_model,
                "p": float(p[0]), "tau": tau, "scenario": name, "mes": trained.choice(name).scenario.mes if mes is None else mes,
                "router_ms": elapsed_ms, "promise": trained.choice(name).scenario.promise()}
    if as_json:
        print_json(decision)
    else:
        console.print(f"[bold]{decision['route']}[/] ({plain(decision['model'])}): p = {decision['p']:.3f} "
                      f"{'≥' if to_edge[0] else '<'} τ = {tau:.2f} [{name}], decided in {elapsed_ms:.1f} ms")
        if decision["promise"]:
            console.print(f"  promise: {decision['promise']}")
