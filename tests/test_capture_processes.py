"""Two real `ecvl-router serve` processes capture into one store under load; one is killed with SIGKILL mid-capture.

The store then reads back whole: SQLite's integrity check passes, every record committed before the kill is
there, every request the surviving gateway answered as sampled is there, and every image a capture names is
on disk with the bytes the client sent. A gateway restarted on the store after the kill captures again.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from ecvl_router.capture_store import CaptureStore
from ecvl_router.data import load_rsd
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from tests.serve_support import CLOUD, EDGE, Process, ThreadServer, data_uri, demo_data, free_port, image_message, tiny_bundle  # noqa: F401
from tests.test_serve_capture import wait_until

pytestmark = pytest.mark.slow

COMMITTED_BEFORE_KILL = 15


class Traffic:
    """Clients sending demo queries to one gateway in a loop until stopped; keeps the sampled answers' request ids."""

    def __init__(self, url: str, queries: list[list[dict]], clients: int = 2) -> None:
        self.url = url
        self.queries = queries
        self.sampled: set[str] = set()
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(offset,), daemon=True) for offset in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            index = offset
            while not self._stop.is_set():
                scenario = "quality" if index % 2 else "speed"
                try:
                    response = client.post("/v1/chat/completions", json={"model": f"ecvl-router:{scenario}",
                                                                          "messages": self.queries[index % len(self.queries)]})
                except httpx.HTTPError:
                    self.failed += 1
                    continue
                if response.status_code == 200 and response.headers.get("x-ecvl-capture") == "sampled":
                    self.sampled.add(response.headers["x-request-id"])
                index += 2

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


def start_gateway(bundle: Path, backends: dict[str, ThreadServer], capture: Path, folder: Path, name: str) -> tuple[Process, str]:
    port = free_port()
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "bundle": str(bundle), "port": port,
        "edge": {"base_url": backends["edge"].url + "/v1"}, "cloud": {"base_url": backends["cloud"].url + "/v1"},
        "capture": {"dir": str(capture), "sample": 1.0, "shadow": True},
    }))
    url = f"http://127.0.0.1:{port}"
    return Process(["serve", "--config", str(config)], url + "/healthz", folder / f"{name}.log").wait_ready(), url


def test_a_killed_gateway_leaves_a_whole_store_that_a_second_gateway_shared(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    rsd = load_rsd(demo_data)
    with_images = [(item["question"], path) for item in rsd.items.to_dict("records") if (path := rsd.image_path(item["image"]))][:12]
    queries = [image_message(question, data_uri(path)) for question, path in with_images]
    sent_images = {hashlib.sha256(path.read_bytes()).hexdigest() for _, path in with_images}
    backends = {role: ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(demo_data, model), latency_scale=0)).start()
                for role, model in (("edge", EDGE), ("cloud", CLOUD))}
    capture = tmp_path / "capture"
    killed, survivor = None, None
    try:
        killed, killed_url = start_gateway(tiny_bundle, backends, capture, tmp_path, "killed")
        survivor, survivor_url = start_gateway(tiny_bundle, backends, capture, tmp_path, "survivor")
        store = CaptureStore(capture, create=False)
        to_killed, to_survivor = Traffic(killed_url, queries), Traffic(survivor_url, queries)

        def committed_by_killed() -> set[str]:
            return {row["request_id"] for row in store.rows("captures")} & to_killed.sampled

        wait_until(lambda: len(committed_by_killed()) >= COMMITTED_BEFORE_KILL and len(to_survivor.sampled) >= 5, "captures from both gateways")
        captures_before = {row["request_id"] for row in store.rows("captures")}
        answers_before = {(row["request_id"], row["role"]) for row in store.rows("answers")}
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(timeout=30)
        assert killed.process.returncode == -signal.SIGKILL
        to_killed.stop()
        wait_until(lambda: len(to_survivor.sampled) >= len(captures_before) // 2 + 10, "the surviving gateway's traffic after the kill")
        to_survivor.stop()
        survivor.process.send_signal(signal.SIGTERM)
        survivor.process.wait(timeout=60)

        store = CaptureStore(capture, create=False)
        assert store.integrity() == "ok"
        captures = {row["request_id"]: row for row in store.rows("captures")}
        answers = {(row["request_id"], row["role"]) for row in store.rows("answers")}
        assert captures_before <= set(captures) and answers_before <= answers
        assert to_survivor.sampled <= set(captures) and to_survivor.failed == 0
        assert {request_id for request_id, role in answers if role == "served"} == set(captures)
        for row in captures.values():
            image = store.image_path(row["image_sha256"], row["image_format"]).read_bytes()
            assert hashlib.sha256(image).hexdigest() == row["image_sha256"] and row["image_sha256"] in sent_images

        restarted, restarted_url = start_gateway(tiny_bundle, backends, capture, tmp_path, "restarted")
        killed = restarted
        response = httpx.post(restarted_url + "/v1/chat/completions", timeout=60,
                              json={"model": "ecvl-router:speed", "messages": queries[0]})
        assert response.status_code == 200 and response.headers["x-ecvl-capture"] == "sampled"
        wait_until(lambda: response.headers["x-request-id"] in {r["request_id"] for r in store.rows("captures")}, "the capture after the restart")
    finally:
        for process in (killed, survivor):
            if process is not None:
                process.kill()
        for server in backends.values():
            server.stop()
