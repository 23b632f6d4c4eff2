"""`ecvl-router serve | backend-sim`: the OpenAI-compatible routing gateway, and a simulated backend to try it."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ecvl_router.cli.console import console, err_console, fail


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root ``ecvl-router`` app."""
    app.command("serve")(serve)
    app.command("backend-sim")(backend_sim)


def serve(
    config: Path | None = typer.Option(None, "--config", help="Gateway configuration (YAML); see --example-config."),
    example_config: bool = typer.Option(False, "--example-config", help="Print a commented example configuration and exit."),
    host: str | None = typer.Option(None, "--host", help="Address to listen on [default: the config's host]."),
    port: int | None = typer.Option(None, "--port", help="Port to listen on [default: the config's port]."),
) -> None:
    """Serve the router as an OpenAI-compatible gateway: each request goes to the edge or the cloud backend."""
    from ecvl_router.serve.config import example_config as example_text

    if example_config:
        typer.echo(example_text(), nl=False)
        return
    if config is None:
        fail("give --config gateway.yaml (print an example with --example-config)")
    import uvicorn

    from ecvl_router.bundle import BundleError
    from ecvl_router.config import ConfigError
    from ecvl_router.features.weights import WeightsIntegrityError, WeightsNotFoundError
    from ecvl_router.serve.app import create_app
    from ecvl_router.serve.config import load_gateway_config
    from ecvl_router.serve.gateway import Gateway
    from ecvl_router.study.store import StoreError

    try:
        settings = load_gateway_config(config)
        err_console.print(f"loading the router bundle {settings.bundle} and its encoders …")
        gateway = Gateway.from_config(settings)
        app = create_app(gateway)
    except (ConfigError, BundleError, StoreError, WeightsNotFoundError, WeightsIntegrityError, FileNotFoundError) as exc:
        fail(str(exc))
    host, port = host or settings.host, port if port is not None else settings.port
    edge, cloud = gateway.backends["edge"], gateway.backends["cloud"]
    err_console.print(
        f"[green]serving[/] http://{host}:{port}/v1 — scenarios {', '.join(gateway.scenarios)} "
        f"(default {gateway.default_scenario}); edge {edge.model} at {edge.spec.base_url}, "
        f"cloud {cloud.model} at {cloud.spec.base_url}"
        + ("" if gateway.client_keys else " — [yellow]no client API keys configured[/]"),
        highlight=False,
    )
    if settings.study is not None:
        err_console.print(f"[green]study[/] http://{host}:{port}/study — ratings in {settings.study.database}", highlight=False)
    verbose = logging.getLogger().level <= logging.INFO
    uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning", access_log=verbose, log_config=None)


def backend_sim(
    data: Path = typer.Option(..., "--data", help="Demo benchmark folder (`ecvl-router data demo --out DIR`)."),
    model: str = typer.Option(..., "--model", help="Simulated model to serve, e.g. sim-vlm-1b."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8101, "--port", help="Port to listen on."),
    latency_scale: float = typer.Option(1.0, "--latency-scale", min=0, help="Multiply the simulated delays (0: answer at once)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the delays drawn for unknown questions."),
) -> None:
    """Development tool: serve a SIMULATED demo VLM over the OpenAI protocol (recorded demo answers, no real model)."""
    import uvicorn

    from ecvl_router.data import RSDValidationError
    from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app

    try:
        simulated = SimulatedModel.from_dataset(data, model)
    except (RSDValidationError, KeyError, FileNotFoundError) as exc:
        fail(str(exc).strip('"'))
    console.print(
        f"[bold yellow]development tool[/]: simulated model {model} ({len(simulated)} recorded answers from {data}, "
        f"delays × {latency_scale:g}) at http://{host}:{port}/v1 — not a real VLM",
        highlight=False,
    )
    uvicorn.run(create_backend_sim_app(simulated, latency_scale=latency_scale, seed=seed), host=host, port=port,
                log_level="warning", access_log=False, log_config=None)
