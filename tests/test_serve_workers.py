"""`ecvl-router serve` as real processes on 127.0.0.1, with `--workers 2` under gunicorn and alone: one port and one
`/metrics` for the whole service (counters equal the sum of what each worker served, a dead worker replaced and
its counts kept), SIGTERM draining requests in flight, and the bundle reloaded by SIGHUP and `POST /admin/reload`
under load without a failed request."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from gunicorn.arbiter import Arbiter
from prometheus_client.multiprocess import MultiProcessCollector

from ecvl_router.data import load_rsd
from ecvl_router.learning.bundle import bundle_digest
from tests.fake_openai import FakeServer
from tests.serve_support import (  # noqa: F401
    CLOUD, EDGE, QUALITY_REQUEST, Load, Process, broken_bundle, bundle_variant, data_uri, demo_data, image_message, metric_values,
    requests_total, sim_backends, tiny_bundle, wait_until,
)

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-0123"


@pytest.fixture(scope="module")
def bundles(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {"cloud-quality": tiny_bundle, "edge-quality": bundle_variant(tiny_bundle, root / "edge-quality", taus={"quality": 0.0}),
            "broken": broken_bundle(tiny_bundle, root / "broken")}


def write_config(path: Path, bundle: Path, backends: dict[str, str], *, model: str | None = None, **settings) -> Path:
    """A gateway configuration on port 0; ``model``: the model id both backends are called with."""
    specs = {role: {"base_url": url, "model": model} for role, url in backends.items()}
    path.write_text(yaml.safe_dump({"bundle": str(bundle), "port": 0, **specs, **settings}))
    return path


def start(config: Path, tmp_path: Path, *args: str) -> tuple[Process, str]:
    """``ecvl-router serve`` with ``args`` (its temporary files under ``tmp_path``), ready; the process and its URL."""
    port_file = tmp_path / "port"
    process = Process(["serve", "--config", str(config), "--port-file", str(port_file), *args], "", tmp_path / "serve.log",
                      env={"TMPDIR": str(tmp_path), "TEST_ADMIN_KEYS": ADMIN_KEY})
    deadline = time.monotonic() + 240
    while not port_file.exists():
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no port file; log:\n{process.log_path.read_text()}")
        time.sleep(0.1)
    url = f"http://127.0.0.1:{int(port_file.read_text())}"
    process.health_url = url + "/healthz"
    return process.wait_ready(), url


def stop(process: Process) -> int:
    """SIGTERM, then the exit status (the process is killed if it does not end within a minute)."""
    process.process.terminate()
    try:
        return process.process.wait(timeout=60)
    finally:
        process.kill()


def workers_of(process: Process) -> list[int]:
    pid = process.process.pid
    return sorted(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def metrics_folder(tmp_path: Path) -> Path:
    (folder,) = tmp_path.glob("ecvl-router-metrics-*")
    return folder


def requests_by_process(folder: Path) -> dict[int, float]:
    """Requests counted in each process's own multiprocess file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])
        counts[int(path.stem.split("_")[1])] = sum(s.value for f in families for s in f.samples if s.name == "ecvl_router_requests_total")
    return counts


def scraped(url: str) -> dict[str, float]:
    return metric_values(httpx.get(url + "/metrics", timeout=30).text)


def test_two_workers_serve_one_port_and_one_metrics(sim_backends, tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "gateway.yaml", tiny_bundle, sim_backends)
    process, url = start(config, tmp_path, "--workers", "2")
    try:
        rsd = load_rsd(demo_data)
        item = next(row for row in rsd.items.to_dict("records") if row["image"])
        answers = rsd.responses.set_index(["item_id", "model"])["response"]
        messages = image_message(item["question"], data_uri(rsd.image_path(item["image"])))
        expected = {"speed": ("edge", answers[(item["item_id"], EDGE)]), "quality": ("cloud", answers[(item["item_id"], CLOUD)])}
        folder, sent, wrong = metrics_folder(tmp_path), [], []

        def send(scenario: str) -> None:  # a new connection each time, so that either worker may take it
            response = httpx.post(url + "/v1/chat/completions", json={"model": f"ecvl-router:{scenario}", "messages": messages}, timeout=120)
            route, content = expected[scenario]
            if response.status_code != 200 or response.headers["x-ecvl-route"] != route or not response.json()["choices"][0]["message"]["content"].endswith(content):
                wrong.append(response.text)
            sent.append(scenario)

        while len(requests_by_process(folder)) < 2 or min(requests_by_process(folder).values()) == 0:
            threads = [threading.Thread(target=send, args=(scenario,)) for scenario in ("speed", "quality") * 4]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(sent) < 400, "one worker never took a request"
        assert wrong == []
        per_process, metrics = requests_by_process(folder), scraped(url)
        assert sorted(per_process) == workers_of(process) and sum(per_process.values()) == len(sent)
        assert requests_total(metrics) == len(sent)
        assert metrics['ecvl_router_requests_total{outcome="ok",route="edge",scenario="speed"}'] == sent.count("speed")
        assert metrics["ecvl_router_edge_share"] == sent.count("speed") / len(sent)
        assert metrics[f'ecvl_router_serving_processes{{bundle="{bundle_digest(tiny_bundle)}"}}'] == 2
        assert metrics["ecvl_router_decision_batch_size_sum"] == len(sent) + 2 * 2  # and each worker's two warm-up decisions
        assert metrics[f'ecvl_router_p_count{{bundle="{bundle_digest(tiny_bundle)}",scenario="speed"}}'] == sent.count("speed")
        windows = {scenario: metrics[f'ecvl_router_drift_window_decisions{{scenario="{scenario}"}}'] for scenario in ("speed", "quality")}
        assert windows == {"speed": sent.count("speed"), "quality": sent.count("quality")}  # both workers' windows, added up
        assert metrics['ecvl_router_drift_edge_share{scenario="speed"}'] == 1.0
        assert metrics['ecvl_router_drift_edge_share{scenario="quality"}'] == 0.0

        killed = workers_of(process)[0]
        os.kill(killed, signal.SIGKILL)  # gunicorn replaces it; its counts stay, its live gauges go
        wait_until(lambda: len(workers_of(process)) == 2 and killed not in workers_of(process)
                   and not (folder / f"gauge_livesum_{killed}.db").exists()
                   and scraped(url).get(f'ecvl_router_serving_processes{{bundle="{bundle_digest(tiny_bundle)}"}}') == 2)
        after = scraped(url)
        assert requests_total(after) == len(sent)
        assert sum(after[f'ecvl_router_drift_window_decisions{{scenario="{scenario}"}}'] for scenario in windows) < len(sent)  # its window went
        send("speed")
        assert wrong == [] and requests_total(scraped(url)) == len(sent)
    finally:
        assert stop(process) == 0
    assert list(tmp_path.glob("ecvl-router-metrics-*")) == []


def test_sigterm_drains_requests_in_flight_then_stops(tiny_bundle: Path, tmp_path: Path) -> None:
    with FakeServer() as slow:
        slow.state.delay_s = 2.0
        config = write_config(tmp_path / "gateway.yaml", tiny_bundle, {"edge": slow.base_url, "cloud": slow.base_url}, model="slow")
        process, url = start(config, tmp_path, "--workers", "2", "--graceful-timeout", "30")
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(httpx.post(
            url + "/v1/chat/completions", json=QUALITY_REQUEST, timeout=60).status_code)) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            wait_until(lambda: slow.state.in_flight == 4)
            process.process.send_signal(signal.SIGTERM)
            for thread in threads:
                thread.join(timeout=60)
            assert statuses == [200] * 4
            assert process.process.wait(timeout=60) == 0
        finally:
            process.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5)
    assert list(tmp_path.glob("ecvl-router-metrics-*")) == []


def serving(url: str, digest: str) -> float:
    return scraped(url).get(f'ecvl_router_serving_processes{{bundle="{digest}"}}', 0.0)


def test_two_workers_reload_by_sighup_and_by_the_admin_endpoint_under_load(sim_backends, bundles, tmp_path: Path) -> None:
    digests = {name: bundle_digest(path) for name, path in bundles.items() if name != "broken"}
    route_of = {digests["cloud-quality"]: "cloud", digests["edge-quality"]: "edge"}
    config = write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends, admin_keys_env="TEST_ADMIN_KEYS")
    process, url = start(config, tmp_path, "--workers", "2")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        with Load(url, QUALITY_REQUEST) as load:
            load.wait_for(10)
            write_config(config, bundles["edge-quality"], sim_backends, admin_keys_env="TEST_ADMIN_KEYS")
            process.process.send_signal(signal.SIGHUP)
            wait_until(lambda: serving(url, digests["edge-quality"]) == 2)
            on_edge = time.monotonic()
            load.wait_for(10, after=on_edge)
            write_config(config, bundles["cloud-quality"], sim_backends, admin_keys_env="TEST_ADMIN_KEYS")
            back = time.monotonic()
            reloaded = httpx.post(url + "/admin/reload", headers=admin, timeout=120)
            assert reloaded.status_code == 200 and reloaded.json()["bundle"] == digests["cloud-quality"], reloaded.text
            wait_until(lambda: serving(url, digests["cloud-quality"]) == 2)
            on_cloud = time.monotonic()
            load.wait_for(10, after=on_cloud)
            write_config(config, bundles["broken"], sim_backends, admin_keys_env="TEST_ADMIN_KEYS")
            refused = httpx.post(url + "/admin/reload", headers=admin, timeout=120)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "bundle_refused"
            wait_until(lambda: scraped(url).get('ecvl_router_bundle_reloads_total{outcome="refused"}') == 2)
            load.wait_for(20, after=on_cloud)
        assert serving(url, digests["cloud-quality"]) == 2
        assert scraped(url)['ecvl_router_bundle_reloads_total{outcome="loaded"}'] == 4
    finally:
        assert stop(process) == 0
    assert load.failures() == []
    assert all(answer.route == route_of[answer.bundle] for answer in load.answers)
    assert {answer.bundle for answer in load.answers if on_edge < answer.sent and answer.ended < back} == {digests["edge-quality"]}
    assert {answer.bundle for answer in load.answers if answer.sent > on_cloud} == {digests["cloud-quality"]}
    assert process.log_path.read_text().count("bundle reload refused") == 2


def test_one_process_reloads_on_sighup_under_load(sim_backends, bundles, tmp_path: Path) -> None:
    digests = {name: bundle_digest(path) for name, path in bundles.items() if name != "broken"}
    config = write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends)
    process, url = start(config, tmp_path)
    try:
        with Load(url, QUALITY_REQUEST) as load:
            load.wait_for(10)
            write_config(config, bundles["edge-quality"], sim_backends)
            process.process.send_signal(signal.SIGHUP)
            wait_until(lambda: serving(url, digests["edge-quality"]) == 1)
            swapped = time.monotonic()
            load.wait_for(10, after=swapped)
            write_config(config, bundles["broken"], sim_backends)
            process.process.send_signal(signal.SIGHUP)
            wait_until(lambda: scraped(url).get('ecvl_router_bundle_reloads_total{outcome="refused"}') == 1)
            load.wait_for(20, after=swapped)
        assert serving(url, digests["edge-quality"]) == 1 and serving(url, digests["cloud-quality"]) == 0
    finally:
        assert stop(process) == -signal.SIGTERM  # uvicorn alone shuts down gracefully, then re-raises the signal
    assert load.failures() == []
    assert {answer.bundle for answer in load.answers} == set(digests.values())
    assert {answer.bundle for answer in load.answers if answer.sent > swapped} == {digests["edge-quality"]}
    assert "bundle reload refused" in process.log_path.read_text()


def test_a_bundle_that_does_not_load_stops_the_service_at_start(sim_backends, bundles, tmp_path: Path) -> None:
    config = write_config(tmp_path / "gateway.yaml", bundles["broken"], sim_backends)
    process = Process(["serve", "--config", str(config), "--workers", "2"], "", tmp_path / "serve.log", env={"TMPDIR": str(tmp_path)})
    try:
        assert process.process.wait(timeout=240) == Arbiter.WORKER_BOOT_ERROR
    finally:
        process.kill()
    log = "".join(process.log_path.read_text().split())  # whatever the log handler's line wrapping
    assert "aworkercannotstart:" in log and "broken/manifest.json:notavalidmanifest" in log
    assert "Traceback" not in log
    assert list(tmp_path.glob("ecvl-router-metrics-*")) == []
