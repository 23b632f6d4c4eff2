"""`ecvl-router serve` and `backend-sim` as processes: port 0, the address they print, and --port-file."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import yaml

from tests.serve_support import EDGE, Process, demo_data, tiny_bundle  # noqa: F401


def _wait_for(path: Path, process: Process, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no port file; log:\n{process.log_path.read_text()}")
        time.sleep(0.1)
    return int(path.read_text())


def test_serve_on_port_0_prints_and_writes_the_port_it_got(tiny_bundle: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    unreachable = "http://127.0.0.1:9/v1"
    config.write_text(yaml.safe_dump({"bundle": str(tiny_bundle), "port": 0, "edge": {"base_url": unreachable}, "cloud": {"base_url": unreachable}}))
    port_file = tmp_path / "port"
    process = Process(["serve", "--config", str(config), "--port-file", str(port_file)], "", tmp_path / "serve.log")
    try:
        port = _wait_for(port_file, process)
        assert port > 0
        process.health_url = f"http://127.0.0.1:{port}/healthz"
        process.wait_ready(timeout=60)
        log = re.sub(r"\s+", " ", process.log_path.read_text())
        assert f"serving http://127.0.0.1:{port}/v1" in log and ":0/" not in log
    finally:
        process.kill()


def test_backend_sim_on_port_0_prints_and_writes_the_port_it_got(demo_data: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = Process(["backend-sim", "--data", str(demo_data), "--model", EDGE, "--port", "0", "--port-file", str(port_file)],
                      "", tmp_path / "sim.log")
    try:
        port = _wait_for(port_file, process)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert f"http://127.0.0.1:{port}/v1" in re.sub(r"\s+", " ", process.log_path.read_text())
    finally:
        process.kill()
