"""The learning loop end to end on 127.0.0.1, as docs/learning.md walks it: a real `ecvl-router serve` with capture
(every request) and shadow answers, backend-sim as edge, cloud and judge; requests, feedback, `data from-capture`,
`judge`, `retrain` (report and verdict); the challenger reloaded under load with no failed request, a broken bundle
refused while the challenger keeps serving; then the gateway killed with SIGKILL mid-traffic, restarted, and its
capture read back whole."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from ecvl_router.capture_store import CaptureStore
from ecvl_router.data import load_rsd
from ecvl_router.learning.bundle import bundle_digest
from ecvl_router.serve.backend_sim import SimulatedJudge, SimulatedModel, create_backend_sim_app
from tests.cli_support import invoke
from tests.serve_support import (  # noqa: F401
    CLOUD, EDGE, QUALITY_REQUEST, Load, Process, ThreadServer, broken_bundle, data_uri, demo_data, free_port, image_message,
    metric_values, tiny_bundle,
)
from tests.test_capture_processes import Traffic
from tests.test_serve_capture import wait_until

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-0123"


def test_capture_judge_retrain_reload_and_a_killed_capture(tiny_bundle: Path, demo_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOP_ADMIN_KEYS", ADMIN_KEY)
    rsd = load_rsd(demo_data)
    queries = [image_message(item["question"], data_uri(path)) if (path := rsd.image_path(item["image"]))
               else [{"role": "user", "content": item["question"]}] for item in rsd.items.to_dict("records")]
    servers = {role: ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(demo_data, model), latency_scale=0)).start()
               for role, model in (("edge", EDGE), ("cloud", CLOUD))}
    servers["judge"] = ThreadServer(create_backend_sim_app(SimulatedJudge.from_dataset(demo_data), latency_scale=0)).start()
    port, capture, config = free_port(), tmp_path / "capture", tmp_path / "gateway.yaml"
    url = f"http://127.0.0.1:{port}"

    def configure(bundle: Path) -> None:
        config.write_text(yaml.safe_dump({
            "bundle": str(bundle), "port": port, "admin_keys_env": "LOOP_ADMIN_KEYS",
            "edge": {"base_url": servers["edge"].url + "/v1"}, "cloud": {"base_url": servers["cloud"].url + "/v1"},
            "capture": {"dir": str(capture), "sample": 1.0, "shadow": True},
        }))

    def serve(name: str) -> Process:
        return Process(["serve", "--config", str(config)], url + "/healthz", tmp_path / f"{name}.log").wait_ready()

    configure(tiny_bundle)
    gateway = serve("gateway")
    try:
        # capture with shadow answers, and feedback
        sent = []
        for index, messages in enumerate(queries):
            response = httpx.post(url + "/v1/chat/completions", timeout=60,
                                  json={"model": f"ecvl-router:{('quality', 'speed')[index % 2]}", "messages": messages})
            assert response.status_code == 200 and response.headers["x-ecvl-capture"] == "sampled", response.text
            sent.append(response.headers["x-request-id"])
        for request_id in sent[:5]:
            assert httpx.post(url + "/v1/feedback", json={"request_id": request_id, "score": 7}).status_code == 200
        assert httpx.post(url + "/v1/feedback", json={"request_id": "no-such-request", "score": 7}).status_code == 404
        store = CaptureStore(capture, create=False)
        wait_until(lambda: {(row["request_id"], row["role"]) for row in store.rows("answers")}
                   >= {(request_id, role) for request_id in sent for role in ("served", "shadow")}, "every served and shadow answer")

        # capture -> judged dataset -> champion against challenger
        captured, contest = tmp_path / "captured", tmp_path / "contest"
        invoke("data", "from-capture", capture, "--out", captured)
        judge = tmp_path / "judge.yaml"
        judge.write_text(yaml.safe_dump({"base_url": servers["judge"].url + "/v1", "model": "sim-judge", "multimodal": False}))
        invoke("judge", "--data", captured, "--judge", judge)
        invoke("data", "validate", captured)
        assert len(load_rsd(captured).items) == len(sent)
        invoke("retrain", tiny_bundle, "--capture", captured, "--out", contest, "--folds", 2, "--repeats", 1,
               "--cache-dir", tiny_bundle.parent / "cache")
        verdict = json.loads((contest / "verdict.json").read_text())
        assert verdict["verdict"] in ("promote", "keep") and f"Verdict: {verdict['verdict']}" in (contest / "report.md").read_text()

        # the challenger reloaded under load; a broken bundle refused
        champion, challenger = bundle_digest(tiny_bundle), bundle_digest(contest / "challenger")
        assert champion != challenger
        headers = {"X-ECVL-Capture": "off"}  # the load stays out of the capture
        with Load(url, QUALITY_REQUEST, threads=3, headers=headers) as load:
            load.wait_for(10)
            configure(contest / "challenger")
            reloaded = httpx.post(url + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=300)
            assert reloaded.status_code == 200 and reloaded.json()["bundle"] == challenger, reloaded.text
            load.wait_for(10, after=load.answers[-1].ended)
            configure(broken_bundle(tiny_bundle, tmp_path / "broken"))
            gateway.process.send_signal(signal.SIGHUP)
            wait_until(lambda: metric_values(httpx.get(url + "/metrics").text).get('ecvl_router_bundle_reloads_total{outcome="refused"}') == 1,
                       "the refused reload", timeout=120)
            load.wait_for(10, after=load.answers[-1].ended)
        assert load.failures() == []
        bundles = [answer.bundle for answer in load.answers]
        assert bundles[0] == champion and bundles[-1] == challenger and set(bundles) == {champion, challenger}
        assert "bundle reload refused, still serving" in gateway.log_path.read_text()

        # SIGKILL while capturing; the capture reads back whole after a restart
        configure(tiny_bundle)
        before = len(store.rows("captures"))
        traffic = Traffic(url, queries[:12])
        wait_until(lambda: len(store.rows("captures")) >= before + 10, "captures before the kill")
        committed = {row["request_id"] for row in store.rows("captures")}
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(timeout=30)
        traffic.stop()
        gateway.kill()
        gateway = serve("restarted")
        store = CaptureStore(capture, create=False)
        assert store.integrity() == "ok" and committed <= {row["request_id"] for row in store.rows("captures")}
        again = tmp_path / "captured-again"
        invoke("data", "from-capture", capture, "--out", again)
        invoke("data", "validate", again)
        assert len(load_rsd(again).items) >= len(committed)
    finally:
        gateway.kill()
        for server in servers.values():
            server.stop()
