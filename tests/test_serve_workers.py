"""`ecvl-router serve --workers 2` as a real process on 127.0.0.1: both workers answer correctly on the shared port
and on their own ports, a conversation stays on its backend whichever worker serves the next turn, and each
worker's /metrics counts its own requests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from ecvl_router.data import load_rsd
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from ecvl_router.serve.conversation import EDGE_MARKER
from tests.serve_support import CLOUD, EDGE, Process, ThreadServer, data_uri, demo_data, image_message, tiny_bundle  # noqa: F401
from tests.test_onnx_export import exported  # noqa: F401


def wait_for_lines(path: Path, count: int, process: Process, timeout: float = 240) -> list[int]:
    deadline = time.monotonic() + timeout
    while not path.exists() or len(path.read_text().split()) < count:
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no port file {path.name}; log:\n{process.log_path.read_text()}")
        time.sleep(0.1)
    return [int(port) for port in path.read_text().split()]


def metric_values(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def requests_total(metrics: dict[str, float]) -> float:
    return sum(value for name, value in metrics.items() if name.startswith("ecvl_router_requests_total{"))


@pytest.mark.slow
def test_two_workers_serve_correct_answers_and_their_own_metrics(tiny_bundle: Path, demo_data: Path, exported: Path, tmp_path: Path) -> None:
    backends = {role: ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(demo_data, model), latency_scale=0)).start()
                for role, model in (("edge", EDGE), ("cloud", CLOUD))}
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "bundle": str(tiny_bundle), "encoders": str(exported / "encoders.yaml"), "port": 0,
        "edge": {"base_url": backends["edge"].url + "/v1"}, "cloud": {"base_url": backends["cloud"].url + "/v1"},
        "stickiness": {"markers": True},  # stateless stickiness: any worker serves any turn
    }))
    port_file, worker_file = tmp_path / "port", tmp_path / "worker-ports"
    process = Process(["serve", "--config", str(config), "--workers", "2", "--port-file", str(port_file),
                       "--worker-port-file", str(worker_file)], "", tmp_path / "serve.log")
    try:
        (port,) = wait_for_lines(port_file, 1, process)
        worker_ports = wait_for_lines(worker_file, 2, process)
        for each in worker_ports:
            process.health_url = f"http://127.0.0.1:{each}/healthz"
            process.wait_ready()
        rsd = load_rsd(demo_data)
        item = next(row for row in rsd.items.to_dict("records") if row["image"])
        answers = rsd.responses.set_index(["item_id", "model"])["response"]
        messages = image_message(item["question"], data_uri(rsd.image_path(item["image"])))
        sent = {each: 0 for each in worker_ports}
        for target in [port] * 4 + worker_ports * 2:
            for scenario, route, model in (("speed", "edge", EDGE), ("quality", "cloud", CLOUD)):
                response = httpx.post(f"http://127.0.0.1:{target}/v1/chat/completions", timeout=60,
                                      json={"model": f"ecvl-router:{scenario}", "messages": messages})
                assert response.status_code == 200, response.text
                assert response.headers["x-ecvl-route"] == route
                content = response.json()["choices"][0]["message"]["content"]
                assert content.endswith(answers[(item["item_id"], model)]) and content != answers[(item["item_id"], model)]
                sent[target] = sent.get(target, 0) + 1
        # the next turn of a conversation the edge answered stays on the edge, on either worker
        for each in worker_ports:
            turn = [*messages, {"role": "assistant", "content": EDGE_MARKER + "an earlier answer"}, {"role": "user", "content": "And why?"}]
            response = httpx.post(f"http://127.0.0.1:{each}/v1/chat/completions", timeout=60, json={"model": "ecvl-router:quality", "messages": turn})
            assert response.status_code == 200 and response.headers["x-ecvl-route"] == "edge"
            assert response.headers["x-ecvl-sticky"] == "true"
            sent[each] += 1
        metrics = [metric_values(httpx.get(f"http://127.0.0.1:{each}/metrics", timeout=30).text) for each in worker_ports]
        workers = [{name for name in values if name.startswith("ecvl_router_worker{")} for values in metrics]
        assert all(len(names) == 1 for names in workers) and workers[0] != workers[1]
        assert 'worker="0"' in next(iter(workers[0])) and 'worker="1"' in next(iter(workers[1]))
        assert sum(requests_total(values) for values in metrics) == sum(sent.values())
        for values, each in zip(metrics, worker_ports):
            assert requests_total(values) >= sent[each]
    finally:
        process.process.terminate()
        process.process.wait(timeout=60)
        process.kill()
        for backend in backends.values():
            backend.stop()
    for each in worker_ports:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{each}/healthz", timeout=5)
