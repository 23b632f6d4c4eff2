"""The CLI in a pipe: errors not wrapped, table cells not cut, user text never read as markup, strict JSON."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.cli.console import json_safe, print_json
from tests.conftest import write_tiny_rsd
from tests.strict_json import strict_loads


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``ecvl-router`` in a subprocess whose stdout and stderr are pipes, on a narrow "terminal"."""
    env = {**os.environ, "COLUMNS": "40", "LINES": "10", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "from ecvl_router.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_an_error_with_a_long_path_is_one_unwrapped_line(tmp_path: Path) -> None:
    missing = tmp_path / ("a-folder-with-a-rather-long-name-" * 6) / "dataset"
    result = _run("data", "validate", str(missing))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]


def test_tables_keep_long_model_names_whole_in_a_pipe(tmp_path: Path) -> None:
    rsd = write_tiny_rsd(tmp_path / "tiny")
    long_name = "organisation/" + "very-long-vision-language-model-name-" * 3 + "v2"
    responses = (rsd / "responses.jsonl").read_text().replace('"model": "b"', f'"model": "{long_name}"')
    (rsd / "responses.jsonl").write_text(responses)
    result = _run("data", "info", str(rsd))
    assert result.returncode == 0, result.stderr
    assert long_name in result.stdout and "…" not in result.stdout


@pytest.mark.parametrize("name", ["runs[exp1]", "odd[/b]name", "[bold red]not markup[/]"])
def test_user_text_is_printed_as_it_is_and_never_read_as_markup(tmp_path: Path, name: str) -> None:
    missing = tmp_path / name / "data"
    result = CliRunner().invoke(app, ["data", "validate", str(missing)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception  # no MarkupError
    assert str(missing) in " ".join(result.output.split())


def test_model_names_with_brackets_survive_in_tables(tmp_path: Path) -> None:
    rsd = write_tiny_rsd(tmp_path / "tiny")
    (rsd / "responses.jsonl").write_text((rsd / "responses.jsonl").read_text().replace('"model": "b"', '"model": "b[exp1]"'))
    result = CliRunner().invoke(app, ["data", "info", str(rsd)])
    assert result.exit_code == 0, result.output
    assert "b[exp1]" in result.output


def test_print_json_writes_null_for_nan_and_infinity(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"token_saving": float("nan"), "shares": np.array([0.5, np.inf]), "n": np.int64(3), "p": np.float32(0.25)})
    assert strict_loads(capsys.readouterr().out) == {"token_saving": None, "shares": [0.5, None], "n": 3, "p": 0.25}
    assert json_safe((1, -math.inf)) == [1, None]


def test_data_info_json_is_strict_json_with_null_token_counts(tmp_path: Path) -> None:
    rsd = write_tiny_rsd(tmp_path / "tiny")  # one response has output_tokens: null
    result = CliRunner().invoke(app, ["data", "info", str(rsd), "--json"])
    assert result.exit_code == 0, result.output
    assert strict_loads(result.stdout)["responses"] == 5


def test_agreement_json_is_strict_json(tmp_path: Path) -> None:
    rsd = write_tiny_rsd(tmp_path / "tiny")
    ratings = tmp_path / "ratings.csv"
    with open(ratings, "w", newline="") as handle:  # one rater, constant scores: correlations are n/a (NaN)
        writer = csv.writer(handle)
        writer.writerow(["item_id", "model", "rater", "score"])
        writer.writerows([["q1", "a", "E1", 8], ["q2", "b", "E1", 8], ["q3", "a", "E1", 8]])
    result = CliRunner().invoke(app, ["agreement", "--judge", str(rsd), "--human", str(ratings), "--json"])
    assert result.exit_code == 0, result.output
    figures = strict_loads(result.stdout)
    assert figures["pearson_r"] is None


def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    from ecvl_router.cli import console as console_module

    monkeypatch.setattr(console_module, "PIPE_PROGRESS_SECONDS", 0.0)
    with console_module.progress_bars("fitting [x]", "splits") as (fit, split):
        for done in range(1, 4):
            fit(done, 3)
        split(1, 2)
    err = capsys.readouterr().err
    assert "fitting [x]: 1/3 (" in err and "fitting [x]: 2/3 (" in err and "splits: 1/2 (" in err
    assert "fitting [x]: 3/3 (" not in err  # the finished state is the bar's own last line
