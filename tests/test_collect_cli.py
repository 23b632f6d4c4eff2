"""The `collect`, `judge` and `data validate` commands end to end, key secrecy, and surviving kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.cli.collect import CALLS_FAILED
from ecvl_router.collect.store import read_records
from tests.fake_openai import FakeServer

SECRET = "sk-live-VERY-SECRET-0123456789"


@pytest.fixture(scope="module")
def server():
    with FakeServer() as running:
        yield running


def write_benchmark(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 200), (90, 20, 160)).save(folder / "photo.jpg")
    rows = [{"id": f"b{i}", "question": f"What is item {i}?", "image": "photo.jpg" if i % 3 == 0 else None, "answer": str(i)} for i in range(count)]
    path = folder / "bench.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_models(path: Path, server: FakeServer, entries: list[tuple[str, str]], **extra) -> Path:
    lines = ["models:"]
    for name, model in entries:
        lines += [f"  - name: {name}", f"    base_url: {server.base_url}", f"    model: {model}"]
        lines += [f"    {key}: {value}" for key, value in extra.items()]
        lines += ["    retry: {max_attempts: 2, backoff_base_s: 0.01}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class Run:
    """A command's exit code and its output with line wrapping undone."""

    def __init__(self, args: list[str]) -> None:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        self.exit_code = result.exit_code
        self.output = " ".join(result.output.split())
        self.last_line = result.output.strip().splitlines()[-1] if result.output.strip() else ""


def invoke(*args: str) -> Run:
    return Run(list(args))


def test_collect_judge_validate(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VLM_KEY", SECRET)
    bench = write_benchmark(tmp_path / "bench", 9)
    models = write_models(tmp_path / "models.yaml", server, [("edge", "good"), ("cloud", "nousage"), ("locked", "echo-auth")], api_key_env="TEST_VLM_KEY")
    judge = tmp_path / "judge.yaml"
    judge.write_text(f"base_url: {server.base_url}\nmodel: judge\napi_key_env: TEST_VLM_KEY\n")
    out = tmp_path / "rsd"

    result = invoke("-v", "collect", "--benchmarks", str(bench), "--models", str(models), "--out", str(out), "--name", "mine")
    assert result.exit_code == CALLS_FAILED, result.output  # every call of "locked" failed
    assert "9 items, 3 model(s)" in result.output and "auth 9" in result.output
    assert result.last_line.startswith("failed: 9 (item, model) pair(s) ended in failure (locked 9)")
    assert all(r["authorization"] == f"Bearer {SECRET}" for r in server.state.requests if r["model"] in ("good", "echo-auth"))

    result = invoke("-v", "collect", "--benchmarks", str(bench), "--models", str(models), "--models", "edge", "--out", str(out))
    assert result.exit_code == 0 and "9 items, 1 model(s)" in result.output
    assert Counter(r["model"] for r in read_records(out / "raw" / "results.jsonl")) == {"edge": 9, "cloud": 9, "locked": 9}

    result = invoke("collect", "--benchmarks", str(bench), "--models", str(models), "--models", "locked", "--no-retry-failed", "--out", str(out))
    assert result.exit_code == CALLS_FAILED and "(locked 9)" in result.last_line  # failures kept are failures still

    result = invoke("-v", "judge", "--data", str(out), "--judge", str(judge))
    assert result.exit_code == 0, result.output
    assert "wrote 18 judged responses" in result.output
    assert "left out 9" in result.output and "collection failed (auth): 9" in result.output
    assert "9 response(s) carry token counts estimated" in result.output
    assert "is a valid Response Score Dataset" in result.output

    result = invoke("data", "validate", str(out))
    assert result.exit_code == 0 and "18 responses" in result.output

    result = invoke("-v", "judge", "--data", str(out), "--judge", str(models.parent / "missing.yaml"))
    assert result.exit_code == 1 and "not found" in result.output

    leaks = [str(path) for path in out.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    assert leaks == []
    assert SECRET not in result.output
    manifest = json.loads((out / "raw" / "collect-manifest.json").read_text())
    assert manifest["settings"]["backends"]["edge"]["api_key_env"] == "TEST_VLM_KEY"
    assert len(manifest["runs"]) == 3 and manifest["runs"][0]["counts"]["locked"]["failed"] == 9


def test_cli_errors_are_clear(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = write_benchmark(tmp_path / "bench", 3)
    models = write_models(tmp_path / "models.yaml", server, [("edge", "good")], api_key_env="UNSET_KEY_VARIABLE")
    monkeypatch.delenv("UNSET_KEY_VARIABLE", raising=False)
    result = invoke("collect", "--benchmarks", str(bench), "--models", str(models), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "UNSET_KEY_VARIABLE" in result.output
    plain = write_models(tmp_path / "plain.yaml", server, [("edge", "good")])
    result = invoke("collect", "--benchmarks", str(bench), "--models", str(plain), "--models", "nobody", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "unknown model(s) nobody" in result.output
    result = invoke("collect", "--benchmarks", "imaginary", "--models", str(plain), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "unknown benchmark 'imaginary'" in result.output
    result = invoke("collect", "--benchmarks", str(bench), "--models", str(plain), "--out", str(tmp_path / "o"), "--shard", "3/2")
    assert result.exit_code == 1 and "shard" in result.output
    result = invoke("collect", "--models", str(plain), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "nothing to collect" in result.output


def test_self_judging_is_refused_unless_allowed(server: FakeServer, tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench", 3)
    models = write_models(tmp_path / "models.yaml", server, [("edge", "good"), ("cloud", "judge-large")])
    out = tmp_path / "rsd"
    result = invoke("collect", "--benchmarks", str(bench), "--models", str(models), "--out", str(out), "--limit", "2")
    assert result.exit_code == 0 and "2 items, 2 model(s)" in result.output
    judge = tmp_path / "judge.yaml"
    judge.write_text(f"base_url: {server.base_url}\nmodel: judge-large\n")
    result = invoke("judge", "--data", str(out), "--judge", str(judge))
    assert result.exit_code == 1 and "self-enhancement bias" in result.output and "cloud" in result.output
    result = invoke("judge", "--data", str(out), "--judge", str(judge), "--allow-self-judging")
    assert result.exit_code == 0 and "wrote 4 judged responses" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("stop, returncode", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)], ids=["kill-9", "ctrl-c"])
def test_a_stopped_collector_resumes_without_loss_or_duplicates(server: FakeServer, tmp_path: Path, stop: signal.Signals, returncode: int) -> None:
    server.state.delay_s = 0.1
    bench = write_benchmark(tmp_path / "bench", 40)
    models = write_models(tmp_path / "models.yaml", server, [("one", "slow"), ("two", "slow")], max_concurrency=2)
    out = tmp_path / "rsd"
    command = [sys.executable, "-c", "from ecvl_router.cli import main; main()", "collect", "--benchmarks", str(bench), "--models", str(models), "--out", str(out)]
    store = out / "raw" / "results.jsonl"
    # A suite started in the background of a non-interactive shell inherits an ignored SIGINT; the collector
    # must see Ctrl-C as a user at a terminal would.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while len(read_records(store)) < 12:
            assert process.poll() is None, "the collector ended before it could be killed"
            assert time.monotonic() < deadline, "the collector made no progress"
            time.sleep(0.02)
        process.send_signal(stop)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == returncode
    survived = read_records(store)
    assert 12 <= len(survived) < 80
    assert len({(r["item_id"], r["model"]) for r in survived}) == len(survived)
    if stop == signal.SIGINT:  # an interrupted run still records itself
        (run,) = json.loads((out / "raw" / "collect-manifest.json").read_text())["runs"]
        assert sum(counts["answered"] for counts in run["counts"].values()) == len(survived)

    requests_before = len(server.state.requests)
    result = invoke("collect", "--benchmarks", str(bench), "--models", str(models), "--out", str(out))
    assert result.exit_code == 0, result.output
    final = read_records(store)
    pairs = Counter((r["item_id"], r["model"]) for r in final)
    assert pairs == {(f"b{i}", model): 1 for i in range(40) for model in ("one", "two")}
    assert all(r["ok"] for r in final)
    assert final[: len(survived)] == survived  # what was saved before the kill is kept as it was
    assert len(server.state.requests) - requests_before == 80 - len(survived)
