"""The `ecvl-router` command: one subcommand per pipeline stage."""

from __future__ import annotations

import os

import typer

from ecvl_router.cli import collect, compare, data, demo, guarantee, reproduce, serve, study, train
from ecvl_router.cli.console import configure_logging

app = typer.Typer(
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
for command in (demo.demo, reproduce.reproduce, train.embed, train.train, train.evaluate, train.route):
    app.command()(command)
app.command(name="evaluate-routers")(compare.evaluate_routers)
app.command(name="check-guarantee")(guarantee.check_guarantee)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    configure_logging(verbose)


def main() -> None:
    """Console-script entry point."""
    # Our rich progress bars replace the Hugging Face libraries' tqdm bars.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app()
