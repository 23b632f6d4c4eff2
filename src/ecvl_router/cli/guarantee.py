"""`ecvl-router check-guarantee`: does the quality guarantee hold on fresh data? Repeated calibration/test splits."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, progress_bar, progress_bars
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.options import CacheOption, EncodersOption, extractor_settings, load_extractor
from ecvl_router.scenarios import ScenarioError, resolve_scenario


def check_guarantee(
    data: Path = typer.Option(..., "--data", help="Dataset folder (interchange or Parquet)."),
    edge: str = typer.Option(..., "--edge", help="Edge (small) model name as in the dataset."),
    cloud: str = typer.Option(..., "--cloud", help="Cloud (large) model name as in the dataset."),
    mes: float = typer.Option(..., "--mes", help="Minimal Expectation Score (dataset scale)."),
    out: Path = typer.Option(..., "--out", help="Report folder: guarantee.md, guarantee.csv, repetitions.csv, probabilities.csv, guarantee.png."),
    max_quality_drop: list[float] = typer.Option([0.02, 0.05, 0.10], "--max-quality-drop", help="Promised bound on APSP(all-at-large) - APSP(routed); repeatable."),
    confidence: list[float] = typer.Option([0.8, 0.9, 0.95], "--confidence", help="Confidence of the promise; repeatable."),
    repetitions: int = typer.Option(200, "--repetitions", min=1, help="Random calibration/test splits."),
    calibration_share: float = typer.Option(0.5, "--calibration-share", min=0.01, max=0.99, help="Share of the queries in each calibration part."),
    router: str = typer.Option("gbdt", "--router", help="Router fitted out of fold for the probabilities."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of the out-of-fold fit."),
    reference: str = typer.Option("quality", "--reference-scenario", help="Scenario whose RCS-maximising tau is shown next to the guarantee."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds, the router and the splits."),
    encoders: Path | None = EncodersOption,
    cache_dir: Path | None = CacheOption,
) -> None:
    """Fit a router out of fold once, then repeat calibration/test splits: realised drop, violation rate and edge share."""
    import pandas as pd

    from ecvl_router.learning.guarantee_check import guarantee_figure, guarantee_markdown, run_guarantee_check
    from ecvl_router.manifest import build_manifest, write_manifest
    from ecvl_router.routers import create_router
    from ecvl_router.learning.runs import default_cache_dir, rsd_features
    from ecvl_router.scenarios import Scenario

    rsd = load_or_fail(data)
    try:
        reference_scenario = resolve_scenario(reference, mes=mes)[0]
        reference_scenario.check_scale(rsd.info.score_min, rsd.info.score_max)
        for delta in max_quality_drop:
            for level in confidence:
                Scenario(name="check", mes=mes, max_quality_drop=delta, confidence=level)
        pair = rsd.pair(edge=edge, cloud=cloud)
        create_router(router, random_state=seed)
    except (ScenarioError, KeyError, ValueError) as exc:
        fail(str(exc).strip('"'))
    started = time.perf_counter()
    extractor = load_extractor(extractor_settings(encoders))
    with progress_bar("embedding items") as progress:
        features = rsd_features(rsd, extractor, cache_dir=cache_dir or default_cache_dir(), item_ids=pair.item_ids, progress=progress)
    extractor.close()
    with progress_bars(f"fitting {router} out of fold", f"{repetitions} calibration/test splits") as (fit_progress, check_progress):
        try:
            check = run_guarantee_check(
                rsd, features, edge=edge, cloud=cloud, mes=mes, router=router, max_drops=max_quality_drop,
                confidences=confidence, reference=reference_scenario, repetitions=repetitions,
                calibration_share=calibration_share, folds=folds, seed=seed,
                fit_progress=fit_progress, check_progress=check_progress,
            )
        except ValueError as exc:
            fail(str(exc))
    pair, summary = check.pair, check.summary
    elapsed = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    context = [
        f"{rsd.info.name}: {edge} (edge) / {cloud} (cloud), MES {mes:g}, {len(pair)} queries",
        f"probabilities: {router} out of fold ({folds} folds); {repetitions} random splits, "
        f"{calibration_share:.0%} calibration / {1 - calibration_share:.0%} test",
        f"all-at-large APSP {float((pair.score_cloud >= mes).mean()):.4f}, all-at-small APSP {float((pair.score_edge >= mes).mean()):.4f}",
        f"plain policies: plug-in (calibration drop <= bound, no margin), matched (the guaranteed mean edge share), "
        f"rcs ({reference_scenario.name}'s RCS-maximising tau)",
        "violation: realised test drop > max_quality_drop; within_bound: rate <= 1 - confidence + 2 Monte-Carlo SE",
        f"seed {seed}, wall time {elapsed:.0f} s",
    ]
    (out / "guarantee.md").write_text(
        guarantee_markdown(summary, title="Quality guarantee on fresh data", context=context) + "\n"
        + "![edge share against max_quality_drop](guarantee.png)\n", encoding="utf-8")
    summary.to_csv(out / "guarantee.csv", index=False)
    pd.DataFrame({"item_id": pair.item_ids, "source": pair.sources, "p": check.p, "score_edge": pair.score_edge,
                  "score_cloud": pair.score_cloud}).to_csv(out / "probabilities.csv", index=False)
    check.rows.to_csv(out / "repetitions.csv", index=False)
    guarantee_figure(summary, out / "guarantee.png")
    write_manifest(out, build_manifest(
        "check-guarantee", inputs={"data": str(rsd.root.resolve()), "data_manifest": rsd.manifest},
        settings={"edge": edge, "cloud": cloud, "mes": mes, "max_quality_drop": max_quality_drop, "confidence": confidence,
                  "repetitions": repetitions, "calibration_share": calibration_share, "router": router, "folds": folds,
                  "reference": reference_scenario.model_dump(), "seed": seed}))
    console.print(f"[green]report[/] {out / 'guarantee.md'} ({elapsed:.0f} s)")
    for _, row in summary[summary["policy"] == "guaranteed"].iterrows():
        flag = "[green]ok[/]" if row["within_bound"] else "[red]above bound[/]"
        console.print(f"  drop ≤ {row['max_quality_drop']:g} at {row['confidence']:g}: edge share {row['edge_share']:.3f}, "
                      f"violation rate {row['violation_rate']:.3f} (allowed {1 - row['confidence']:.2f}) {flag}")
