"""The `ecvl-router` command: one subcommand per pipeline stage."""

from __future__ import annotations

import os

import typer

from ecvl_router.cli import collect, data, demo, reproduce, serve, study
from ecvl_router.cli.console import configure_logging
from ecvl_router.cli.lazy import LazyGroup


class _RootGroup(LazyGroup):
    lazy_commands = {
        **{name: ("ecvl_router.cli.train", name) for name in ("embed", "train", "evaluate", "route")},
        "evaluate-routers": ("ecvl_router.cli.compare", "evaluate_routers"),
        "check-guarantee": ("ecvl_router.cli.guarantee", "check_guarantee"),
        "export-encoders": ("ecvl_router.cli.export", "export_encoders"),
        "retrain": ("ecvl_router.cli.retrain", "retrain"),
        "drift": ("ecvl_router.cli.drift", "drift"),
        "predict": ("ecvl_router.cli.predict", "predict"),
    }


app = typer.Typer(
    cls=_RootGroup,
    name="ecvl-router",
    help="Scenario-aware edge/cloud routing for vision-language models. Each subcommand runs one stage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
collect.register(app)
serve.register(app)
study.register(app)
for command in (demo.demo, reproduce.reproduce):
    app.command()(command)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    configure_logging(verbose)


def main() -> None:
    """Console-script entry point."""
    # Our rich progress bars replace the Hugging Face libraries' tqdm bars.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app()
