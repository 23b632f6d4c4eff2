"""`ecvl-router drift`: has live traffic (a capture folder) moved away from what the router was trained on?"""

from __future__ import annotations

from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, plain


def drift(
    capture: Path = typer.Argument(..., help="Capture folder written by the gateway (its `capture` section)."),
    bundle: Path = typer.Option(..., "--bundle", help="Run folder of the router that served the traffic."),
    out: Path = typer.Option(..., "--out", help="Report folder: drift.md, scenarios.csv, queries.csv, drift.png."),
    last: int | None = typer.Option(None, "--last", min=1, help="Only the last N captured decisions."),
    data: Path | None = typer.Option(None, "--data", help="The bundle's dataset if it moved (for the query statistics)."),
) -> None:
    """PSI of p against the bundle's held-out reference, live against validation edge share, query statistics; is retraining due?"""
    import pandas as pd

    from ecvl_router.capture_store import CaptureStore, CaptureStoreError
    from ecvl_router.data import load_rsd
    from ecvl_router.data.problems import RSDValidationError
    from ecvl_router.learning.drift import query_drift, retraining_due, scenario_drift
    from ecvl_router.manifest import read_manifest, write_json_atomic
    from ecvl_router.report.drift_report import drift_figure, drift_markdown

    manifest = read_manifest(bundle)
    if manifest is None or "scenarios" not in manifest:
        fail(f"{bundle}: no router bundle (manifest.json with scenarios)")
    if "p_reference" not in manifest:
        fail(f"{bundle}: the bundle records no reference p histogram (trained before drift was measured); retrain it")
    try:
        live = pd.DataFrame(CaptureStore(capture, create=False).rows("captures"))
    except CaptureStoreError as exc:
        fail(str(exc))
    if live.empty:
        fail(f"{capture}: no captured requests yet")
    live = live.tail(last) if last else live
    live["p"] = pd.to_numeric(live["p"], errors="coerce")
    scenarios = scenario_drift(live, manifest)
    queries = None
    source = data or manifest.get("inputs", {}).get("data")
    try:
        if not source:
            raise FileNotFoundError("the manifest names no dataset")
        items = load_rsd(source).items
        queries = query_drift(live["question"].tolist(), live["image_sha256"].notna().tolist(),
                              items["question"].tolist(), items["image"].notna().tolist())
    except (RSDValidationError, OSError) as exc:
        console.print(f"[yellow]note[/] no query statistics: the bundle's dataset cannot be read ({plain(str(exc))}); pass --data")
    due = retraining_due(scenarios)
    out.mkdir(parents=True, exist_ok=True)
    scenarios.to_csv(out / "scenarios.csv", index=False)
    if queries is not None:
        queries.to_csv(out / "queries.csv", index=False)
    drift_figure(live, manifest, out / "drift.png")
    context = [f"bundle: {bundle}", f"capture: {capture}, {len(live)} decisions"
               f" from {live['created_at'].iloc[0]} to {live['created_at'].iloc[-1]}"]
    (out / "drift.md").write_text(drift_markdown(scenarios, queries, due, context=context), encoding="utf-8")
    write_json_atomic(out / "drift.json", {"retraining_due": due, "scenarios": scenarios.to_dict(orient="records")})
    console.print(f"retraining {'[bold red]is due[/]' if due else '[green]is not due[/]'} → {plain(out)}")
    for row in scenarios.itertuples():
        console.print(f"  {plain(row.scenario)}: {row.queries} queries, PSI {row.psi:.3f}, edge share {row.live_edge_share:.3f} "
                      f"(validation {row.validation_edge_share:.3f}): {row.level}")
