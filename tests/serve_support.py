"""Shared pieces of the gateway and client tests: a demo dataset, router bundles, servers on 127.0.0.1.

A bundle is trained through the real ``ecvl-router train`` command on a small demo benchmark, either with
tiny randomly initialised encoders (fast tests) or with the real default encoders (slow tests).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
import yaml
from typer.testing import CliRunner

from ecvl_router.cli import app as cli_app
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo

CLOUD, EDGE = DEMO_PAIRS[0]
SCENARIO_FILE = {
    "scenarios": [
        {"name": "quality", "alpha": 1.2, "beta": 0.1, "gamma": 0.001},
        {"name": "speed", "alpha": 1.0, "beta": 0.1, "gamma": 0.0015},
        {"name": "privacy", "alpha": 1.0, "beta": 0.5, "gamma": 0.0, "cloud_allowed": False},
    ]
}
WORDS = ["what", "is", "the", "colour", "of", "how", "many", "are", "there", "which", "value", "?", "."]


def write_tiny_encoders(folder: Path) -> Path:
    """A 1-layer BERT and a 1-layer ViT saved like Hub models, and the encoder settings YAML naming them."""
    from transformers import BertConfig, BertModel, BertTokenizer, ViTConfig, ViTImageProcessor, ViTModel

    bert, vit = folder / "tiny-bert", folder / "tiny-vit"
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(vocab=str(bert / "vocab.txt")).save_pretrained(bert)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(bert)
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32)).save_pretrained(vit)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    settings = folder / "encoders.yaml"
    settings.write_text(yaml.safe_dump({"text_model": str(bert), "image_model": str(vit)}))
    return settings


def train_bundle(data: Path, out: Path, cache: Path, encoders: Path | None = None, epochs: int = 2, router: str = "ecvl") -> Path:
    """Train a router bundle (ECVL by default, the split recipe) on ``data`` for quality, speed and a privacy scenario (``ecvl-router train``)."""
    scenarios = out.parent / f"{out.name}-scenarios.yaml"
    scenarios.write_text(yaml.safe_dump(SCENARIO_FILE))
    args = ["train", "--data", str(data), "--edge", EDGE, "--cloud", CLOUD, "--out", str(out), "--epochs", str(epochs),
            "--cache-dir", str(cache), "--scenario", str(scenarios), "--router", router, "--recipe", "split"]
    if encoders is not None:
        args += ["--encoders", str(encoders)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_uri(path: Path) -> str:
    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def image_message(question: str, image: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": image}}]}]


class ThreadServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread; ``stop()`` closes it."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


class Process:
    """An ``ecvl-router`` subcommand in its own process, waited on until ``health_url`` answers."""

    def __init__(self, args: list[str], health_url: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.health_url = health_url
        self._log = open(log, "wb")
        command = [str(Path(sys.executable).with_name("ecvl-router")), *args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        self.log_path = log

    def wait_ready(self, timeout: float = 240) -> Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.health_url} did not answer within {timeout} s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        self._log.close()


PINNED_TAU = {"quality": 1.0, "speed": 0.0}
"""Thresholds pinned in the fast tests' bundle so that routes are known in advance (the p values stay the
router's own): quality sends every query to the cloud (p < 1), speed every query to the edge."""


def pin_thresholds(bundle: Path, taus: dict[str, float]) -> None:
    """Overwrite the tau of some scenarios in a bundle's manifest."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name, tau in taus.items():
        manifest["scenarios"][name]["tau"] = tau
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-item demo benchmark."""
    return generate_demo(tmp_path_factory.mktemp("demo") / "data", n_items=60, seed=3).out_dir


@pytest.fixture(scope="module")
def tiny_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained with tiny encoders, thresholds pinned (PINNED_TAU)."""
    root = tmp_path_factory.mktemp("tiny-bundle")
    bundle = train_bundle(demo_data, root / "run", root / "cache", write_tiny_encoders(root / "encoders"))
    pin_thresholds(bundle, PINNED_TAU)
    return bundle


def bundle_variant(bundle: Path, out: Path, *, taus: dict[str, float] | None = None, edge_model: str | None = None) -> Path:
    """A copy of ``bundle`` with some thresholds pinned, or trained (says its manifest) for another edge model."""
    shutil.copytree(bundle, out)
    if taus:
        pin_thresholds(out, taus)
    if edge_model is not None:
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["settings"]["task"]["edge"] = edge_model
        (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def broken_bundle(bundle: Path, out: Path) -> Path:
    """A copy of ``bundle`` whose manifest is cut in half (it does not load)."""
    shutil.copytree(bundle, out)
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[: len(text) // 2])
    return out


def metric_values(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition: ``name{labels}`` to value."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def requests_total(metrics: dict[str, float]) -> float:
    return sum(value for name, value in metrics.items() if name.startswith("ecvl_router_requests_total{"))


@dataclass(frozen=True)
class Answer:
    """One request of a :class:`Load`: when it was sent and ended, its status, and the bundle and route it names."""

    sent: float
    ended: float
    status: int | None
    bundle: str | None
    route: str | None
    error: str | None = None


class Load:
    """The same chat request sent back to back from ``threads`` threads, each on a new connection, until the
    ``with`` block ends; ``answers`` holds every one."""

    def __init__(self, url: str, body: dict, *, threads: int = 4, headers: dict[str, str] | None = None) -> None:
        self.url, self.body, self.headers = url, body, headers or {}
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _send(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = httpx.post(self.url + "/v1/chat/completions", json=self.body, headers=self.headers, timeout=120)
            except httpx.HTTPError as exc:
                self.answers.append(Answer(sent, time.monotonic(), None, None, None, f"{type(exc).__name__}: {exc}"))
                continue
            self.answers.append(Answer(sent, time.monotonic(), response.status_code, response.headers.get("x-ecvl-bundle"),
                                       response.headers.get("x-ecvl-route"), None if response.status_code == 200 else response.text))

    def failures(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status != 200]

    def wait_for(self, count: int, *, after: float = 0.0, timeout: float = 120) -> None:
        """Wait until ``count`` answers sent after ``after`` (a ``time.monotonic()``) have ended."""
        wait_until(lambda: sum(answer.sent > after for answer in list(self.answers)) >= count, timeout)


def wait_until(check: Callable[[], bool], timeout: float = 120) -> None:
    """Return once ``check()`` holds; AssertionError if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the condition did not hold within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sim_backends(demo_data: Path) -> Iterator[dict[str, str]]:
    """The demo's edge and cloud models served by backend-sim without delays on 127.0.0.1: their /v1 URLs by role."""
    from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app

    servers = {role: ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(demo_data, model), latency_scale=0)).start()
               for role, model in (("edge", EDGE), ("cloud", CLOUD))}
    yield {role: server.url + "/v1" for role, server in servers.items()}
    for server in servers.values():
        server.stop()


QUALITY_REQUEST = {"model": "ecvl-router:quality", "messages": [{"role": "user", "content": "What is the colour of the sky?"}]}
"""Routed to the cloud by ``tiny_bundle`` (quality tau 1), to the edge by a variant pinned at quality tau 0."""
