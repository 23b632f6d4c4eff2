"""Running `ecvl-router` commands in-process for the CLI tests."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from ecvl_router.cli import app


def invoke(*args: object) -> Result:
    """Run ``ecvl-router ARGS`` (each argument as text) and assert that it succeeded; the result has its output."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result
