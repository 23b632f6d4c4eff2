"""`ecvl-router study-report | study-demo`: report an online study; try one on the simulated demo benchmark."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer
import yaml
from rich.table import Table

from ecvl_router.cli.console import console, fail, plain

DEMO_ROUTERS = {"ecvl": "mes", "win-soft-1": "win-soft"}
"""The demo study's router policies and the label rule each is trained with (win-soft with k = 1)."""


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root ``ecvl-router`` app."""
    app.command("study-report")(study_report)
    app.command("study-demo")(study_demo)


def study_report(
    database: Path = typer.Argument(..., help="The study's SQLite database (the gateway config's study.database)."),
    out: Path = typer.Option(..., "--out", help="Folder for the CSV tables, the PNG figure and the Markdown summary."),
    min_ratings: int = typer.Option(10, "--min-ratings", min=1, help="Ratings a policy needs in a scenario before it is compared."),
) -> None:
    """APSP and latency per policy and scenario with 95 % confidence intervals, per participant too (Figure 10)."""
    from ecvl_router.study.report import StudyReportError, write_study_report

    try:
        report = write_study_report(database, out, min_ratings=min_ratings)
    except StudyReportError as exc:
        fail(str(exc))
    table = Table(title=f"Online study — {plain(database)}")
    for column in ("scenario", "policy", "ratings", "APSP [95 % CI]", "latency s [95 % CI]", "edge share"):
        table.add_column(column, justify="right" if column not in ("scenario", "policy") else "left")
    for row in report.summary.itertuples(index=False):
        table.add_row(
            f"{plain(row.scenario)} (MES {row.mes:g})", plain(row.policy), str(row.ratings),
            f"{row.apsp:.3f} [{row.apsp_low:.3f}, {row.apsp_high:.3f}]",
            f"{row.latency_s:.2f} [{row.latency_low:.2f}, {row.latency_high:.2f}]", f"{row.edge_share:.2f}",
        )
    console.print(table)
    if not report.too_few.empty:
        console.print(
            f"[yellow]too few ratings for a conclusion[/] (fewer than {min_ratings}) for "
            + ", ".join(f"{plain(r.policy)} in {plain(r.scenario)} ({r.ratings})" for r in report.too_few.itertuples(index=False))
        )
    console.print(f"[green]report[/] {plain(report.files['markdown'])} (figure {plain(report.files['figure'])}, tables in {plain(out)})")


def study_demo(
    out: Path = typer.Option(Path("study-demo"), "--out", help="Folder for the demo data, routers, gateway.yaml and study.db."),
    items: int = typer.Option(800, "--items", min=100, help="Number of demo benchmark items."),
    seed: int = typer.Option(0, "--seed", help="Seed of the benchmark, the routers and the policy assignment."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs of the routers."),
    port: int = typer.Option(8000, "--port", help="Gateway port; the two simulated backends listen on the next two."),
    latency_scale: float = typer.Option(1.0, "--latency-scale", min=0, help="Multiply the simulated answer delays."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Write data, routers and gateway.yaml, then exit."),
) -> None:
    """Development tool: an online study on the SIMULATED demo benchmark, served at http://127.0.0.1:PORT/study.

    Generates the demo benchmark, trains the ECVL router and a win-soft(1) router for the Quality-first
    (MES 7) and Speed-first (MES 5) scenarios, writes gateway.yaml with a study comparing them with
    all-large and all-small, then serves two simulated backends and the gateway. Re-runs reuse what exists.
    """
    from ecvl_router.cli.demo import demo_data
    from ecvl_router.cli.serve import serve
    from ecvl_router.cli.train import train
    from ecvl_router.data.demo import DEMO_PAIRS
    from ecvl_router.manifest import read_manifest
    from ecvl_router.study.config import DEFAULT_SCENARIOS

    cloud, edge = DEMO_PAIRS[0]
    demo_data(out / "data", items, seed)
    data_sha256 = (read_manifest(out / "data") or {}).get("sha256")
    bundles: dict[str, dict[str, str]] = {}
    for policy, rule in DEMO_ROUTERS.items():
        for scenario in DEFAULT_SCENARIOS:
            run = out / "runs" / f"{policy}-{scenario.name}"
            bundles.setdefault(policy, {})[scenario.name] = str(run.relative_to(out))
            trained = read_manifest(run) or {}
            settings = trained.get("settings", {})
            if (trained.get("inputs", {}).get("data_manifest", {}).get("sha256") == data_sha256
                    and settings.get("seed") == seed and settings.get("params", {}).get("epochs") == epochs):
                console.print(f"[dim]reusing the router {plain(run)}[/]")
                continue
            console.print(f"[bold]training[/] {plain(policy)} for {plain(scenario.name)} (MES {scenario.mes:g}, labels {plain(rule)})")
            train(data=out / "data", edge=edge, cloud=cloud, out=run, scenario=[scenario.name], mes=scenario.mes,
                  label_rule=rule, k=1, router="ecvl", seed=seed, epochs=epochs, edge_share=None, holdout_sources=None,
                  encoders=None, cache_dir=out / "cache", force=True)
    config = out / "gateway.yaml"
    config.write_text(_demo_gateway_config(bundles, port, seed), encoding="utf-8")
    console.print(f"[green]wrote[/] {plain(config)}")
    if prepare_only:
        return
    _serve_backend_sims(out / "data", {"edge": edge, "cloud": cloud}, port, latency_scale)
    serve(config=config, example_config=False, host=None, port=None, port_file=None)


def _demo_gateway_config(bundles: dict[str, dict[str, str]], port: int, seed: int) -> str:
    document = {
        "bundle": bundles["ecvl"]["quality"],
        "port": port,
        "edge": {"base_url": f"http://127.0.0.1:{port + 1}/v1"},
        "cloud": {"base_url": f"http://127.0.0.1:{port + 2}/v1"},
        "decision_log": "decisions.jsonl",
        "study": {
            "database": "study.db",
            "seed": seed,
            "rating": "score",
            "demo_data": "data",
            "policies": [
                {"name": "ecvl", "bundles": bundles["ecvl"]},
                {"name": "all-large", "route": "cloud"},
                {"name": "all-small", "route": "edge"},
                {"name": "win-soft-1", "bundles": bundles["win-soft-1"]},
            ],
        },
    }
    header = ("# Written by `ecvl-router study-demo`: a study on the SIMULATED demo benchmark (backends are backend-sims).\n"
              "# Scenarios: the defaults, Quality first (MES 7) and Speed first (MES 5). See docs/study.md.\n")
    return header + yaml.safe_dump(document, sort_keys=False)


def _serve_backend_sims(data: Path, models: dict[str, str], port: int, latency_scale: float) -> None:
    """The edge and cloud backend-sims on the two ports after ``port``, in background threads."""
    import uvicorn

    from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app

    for offset, (role, model) in enumerate(models.items(), start=1):
        app = create_backend_sim_app(SimulatedModel.from_dataset(data, model), latency_scale=latency_scale)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port + offset, log_level="warning", access_log=False))
        threading.Thread(target=server.run, name=f"backend-sim-{role}", daemon=True).start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                fail(f"the simulated {role} backend did not start on port {port + offset}")
            time.sleep(0.05)
        console.print(f"[bold yellow]development tool[/]: simulated {plain(role)} model {plain(model)} at http://127.0.0.1:{port + offset}/v1 — not a real VLM")
