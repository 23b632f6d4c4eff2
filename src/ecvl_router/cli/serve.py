"""`ecvl-router serve | backend-sim`: the OpenAI-compatible routing gateway, and a simulated backend to try it."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ecvl_router.cli.console import console, err_console, fail, plain

if TYPE_CHECKING:  # the server's modules load when a server starts, not for --help
    from fastapi import APIRouter

    from ecvl_router.serve.gateway import Gateway
    from ecvl_router.serve.reload import Hangups
    from ecvl_router.study.config import StudyConfig


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root ``ecvl-router`` app."""
    app.command("serve")(serve)
    app.command("backend-sim")(backend_sim)


def serve(
    config: Path | None = typer.Option(None, "--config", help="Gateway configuration (YAML); see --example-config."),
    example_config: bool = typer.Option(False, "--example-config", help="Print a commented example configuration and exit."),
    host: str | None = typer.Option(None, "--host", help="Address to listen on.", show_default="the config's host"),
    port: int | None = typer.Option(None, "--port", help="Port to listen on; 0 picks a free one.", show_default="the config's port"),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the port listened on to this file once listening."),
    workers: int = typer.Option(1, "--workers", min=1, help="Gateway processes sharing the port under gunicorn, each with its own encoders."),
    timeout: int = typer.Option(30, "--timeout", min=0, help="With --workers: a worker silent this many seconds is killed and replaced (0: never)."),
    graceful_timeout: int = typer.Option(30, "--graceful-timeout", min=0, help="Seconds in-flight requests get to finish after SIGTERM."),
) -> None:
    """Serve the router as an OpenAI-compatible gateway: each request goes to the edge or the cloud backend.

    SIGHUP (or POST /admin/reload) reloads the bundle the configuration names, without a restart.
    """
    if example_config:
        from ecvl_router.serve.config import example_config as example_text

        typer.echo(example_text(), nl=False)
        return
    if config is None:
        fail("give --config gateway.yaml (print an example with --example-config)")
    if workers > 1:
        serve_workers(config, workers, host, port, port_file, timeout=timeout, graceful_timeout=graceful_timeout)
        return
    from ecvl_router.serve.reload import Hangups

    hangups = Hangups()
    hangups.install()  # from now on: a SIGHUP while the bundle loads reloads it once the gateway serves
    try:
        serve_one(config, host, port, port_file, hangups, graceful_timeout=graceful_timeout)
    finally:
        hangups.uninstall()


def serve_one(config: Path, host: str | None, port: int | None, port_file: Path | None, hangups: Hangups, *,
              graceful_timeout: int) -> None:
    """``serve``: the gateway (and a study's routes) in this process, reloading its bundle on ``hangups``."""
    from ecvl_router.learning.bundle import BundleError
    from ecvl_router.config import ConfigError
    from ecvl_router.features.onnx_encoders import OnnxExportError
    from ecvl_router.features.weights import WeightsIntegrityError, WeightsNotFoundError
    from ecvl_router.serve.app import create_app
    from ecvl_router.serve.gateway import Gateway
    from ecvl_router.serve.heap import freeze_heap
    from ecvl_router.serve.reload import Reloader
    from ecvl_router.study.config import load_study_gateway_config
    from ecvl_router.study.store import StoreError

    try:
        settings = load_study_gateway_config(config)
        err_console.print(f"loading the router bundle {plain(settings.bundle)} and its encoders …")
        gateway = Gateway.from_config(settings)
        app = create_app(gateway, routers=study_routers(gateway, settings.study), reloader=Reloader(gateway, config, hangups=hangups))
    except (ConfigError, BundleError, StoreError, WeightsNotFoundError, WeightsIntegrityError, OnnxExportError, FileNotFoundError) as exc:
        fail(str(exc))
    host = host or settings.host
    listener = listen(host, port if port is not None else settings.port, port_file)
    address = http_address(host, listener)
    edge, cloud = gateway.backends["edge"], gateway.backends["cloud"]
    err_console.print(
        f"[green]serving[/] {plain(address)}/v1 — scenarios {plain(', '.join(gateway.scenarios))} "
        f"(default {plain(gateway.default_scenario)}); edge {plain(edge.model)} at {plain(edge.spec.base_url)}, "
        f"cloud {plain(cloud.model)} at {plain(cloud.spec.base_url)}, bundle {plain(gateway.served.digest)}"
        + ("" if gateway.client_keys else " — [yellow]no client API keys configured[/]"),
        highlight=False,
    )
    if settings.study is not None:
        err_console.print(f"[green]study[/] {plain(address)}/study — ratings in {plain(settings.study.database)}", highlight=False)
    verbose = logging.getLogger().level <= logging.INFO
    freeze_heap()
    run_server(app, listener, log_level="info" if verbose else "warning", access_log=verbose, graceful_timeout=graceful_timeout)


def serve_workers(config: Path, workers: int, host: str | None, port: int | None, port_file: Path | None, *,
                  timeout: int, graceful_timeout: int) -> None:
    """``serve --workers N``: N gateway processes under gunicorn on one port, their metrics in a fresh folder."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="ecvl-router-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # before prometheus-client is first imported
    try:
        from ecvl_router.config import ConfigError
        from ecvl_router.serve.gunicorn_app import GatewayService, WorkerSettings
        from ecvl_router.study.config import load_study_gateway_config

        try:
            settings = load_study_gateway_config(config)
        except ConfigError as exc:
            fail(str(exc))
        if settings.study is not None:
            fail(f"{config}: a study section is served by one process only; serve it with --workers 1")
        host = host or settings.host
        listener = listen(host, port if port is not None else settings.port, port_file)
        err_console.print(
            f"[green]serving[/] {plain(http_address(host, listener))}/v1 with {workers} gunicorn workers (each loads the bundle "
            f"{plain(settings.bundle)} and its encoders), /metrics for all of them; SIGHUP to {os.getpid()} reloads the bundle",
            highlight=False,
        )
        verbose = logging.getLogger().level <= logging.INFO
        GatewayService(WorkerSettings(
            config.resolve(), workers, listener.detach(), metrics_dir, timeout=timeout, graceful_timeout=graceful_timeout,
            log_level="info" if verbose else "warning", access_log=verbose,
        )).run()
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def study_routers(gateway: Gateway, study: StudyConfig | None) -> list[APIRouter]:
    """The study's routes to mount on the gateway's app: none without a study section."""
    if study is None:
        return []
    from ecvl_router.study.routes import study_router

    return [study_router(gateway, study)]


def listen(host: str, port: int, port_file: Path | None = None) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one); its port is written to ``port_file`` if given."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    if port_file is not None:
        write_ports(port_file, [listener])
    return listener


def write_ports(path: Path, listeners: list[socket.socket]) -> None:
    """The listeners' ports, one a line, written so that readers never see a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(f"{sock.getsockname()[1]}\n" for sock in listeners), encoding="utf-8")
    os.replace(partial, path)


def http_address(host: str, listener: socket.socket) -> str:
    """``http://host:port`` of a listening socket, with the port it really got."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{listener.getsockname()[1]}"


def run_server(app: Any, listener: socket.socket, *, log_level: str, access_log: bool, graceful_timeout: int | None = None) -> None:
    """Serve ``app`` with uvicorn on an already listening socket until interrupted (then ``graceful_timeout`` s to drain)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=access_log, log_config=None,
                                           timeout_graceful_shutdown=graceful_timeout))
    server.run(sockets=[listener])


def backend_sim(
    data: Path = typer.Option(..., "--data", help="Demo benchmark folder (`ecvl-router data demo --out DIR`)."),
    model: str | None = typer.Option(None, "--model", help="Simulated model to serve, e.g. sim-vlm-1b (required unless --judge)."),
    judge: bool = typer.Option(False, "--judge", help="Serve a simulated judge (model sim-judge) that gives recorded answers their recorded scores."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8101, "--port", help="Port to listen on; 0 picks a free one."),
    port_file: Path | None = typer.Option(None, "--port-file", help="Write the port listened on to this file once listening."),
    latency_scale: float = typer.Option(1.0, "--latency-scale", min=0, help="Multiply the simulated delays (0: answer at once)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the delays drawn for unknown questions."),
) -> None:
    """Development tool: serve a SIMULATED demo VLM over the OpenAI protocol (recorded demo answers, no real model)."""
    from ecvl_router.data import RSDValidationError
    from ecvl_router.serve.backend_sim import SimulatedJudge, SimulatedModel, create_backend_sim_app

    if (model is None) == (not judge):
        fail("give --model NAME for a simulated VLM, or --judge for the simulated judge (not both)")
    try:
        simulated = SimulatedJudge.from_dataset(data) if judge else SimulatedModel.from_dataset(data, str(model))
    except (RSDValidationError, KeyError, FileNotFoundError) as exc:
        fail(str(exc).strip('"'))
    listener = listen(host, port, port_file)
    console.print(
        f"[bold yellow]development tool[/]: simulated {'judge' if judge else 'model'} {plain(simulated.name)} ({len(simulated)} recorded answers from {plain(data)}, "
        f"delays × {latency_scale:g}) at {plain(http_address(host, listener))}/v1 — not a real VLM",
        highlight=False,
    )
    run_server(create_backend_sim_app(simulated, latency_scale=latency_scale, seed=seed), listener, log_level="warning", access_log=False)
