"""Drift on the gateway's /metrics: the histogram of p, and the edge share and PSI of p over the last router decisions
against the bundle's held-out reference; in one process, summed over processes (multiprocess mode), through the
HTTP app, and reset by a reload."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from ecvl_router.learning.bundle import bundle_digest
from ecvl_router.learning.drift import P_BINS, p_histogram, population_stability_index
from ecvl_router.serve.drift import DriftReference, bin_index
from ecvl_router.serve.metrics import GatewayMetrics
from ecvl_router.serve.routing import Decision
from tests.serve_support import (  # noqa: F401
    ThreadServer, bundle_variant, demo_data, metric_values, sim_backends, tiny_bundle,
)

REFERENCE_COUNTS = [5, 0, 0, 0, 0, 0, 0, 0, 0, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 5]
MANIFEST = {
    "scenarios": {"quality": {"val_metrics": {"ca": 0.4}}, "speed": {"val_metrics": {"ca": 0.9}}},
    "p_reference": {"quality": {"bins": P_BINS.tolist(), "counts": REFERENCE_COUNTS}},
}


def decision(p: float, route: str = "edge", scenario: str = "quality") -> Decision:
    return Decision(route, p, 0.5, scenario, 1.0)  # type: ignore[arg-type]


def scrape(metrics: GatewayMetrics) -> dict[str, float]:
    return metric_values(metrics.exposition().decode())


def test_bins_are_those_of_the_reference_histogram() -> None:
    values = [0.0, 0.01, 0.049, 0.3, 0.51, 0.77, 0.999, 1.0, -0.2, 1.3]
    assert np.bincount([bin_index(p) for p in values], minlength=len(P_BINS) - 1).tolist() == p_histogram(values).tolist()


def test_reference_reads_the_manifest_and_skips_other_bins() -> None:
    manifest = {**MANIFEST, "p_reference": {**MANIFEST["p_reference"], "speed": {"bins": [0.0, 0.5, 1.0], "counts": [1, 1]}}}
    reference = DriftReference.from_manifest("abc", ["quality", "speed", "privacy"], manifest)
    assert reference.bundle == "abc" and set(reference.p_counts) == {"quality"}
    assert reference.edge_share["quality"] == 0.4 and reference.edge_share["speed"] == 0.9
    assert math.isnan(reference.edge_share["privacy"])
    assert DriftReference.from_manifest(None, ["quality"], None).bundle == "none"


def test_window_keeps_the_last_decisions_and_the_scrape_derives_share_and_psi() -> None:
    metrics = GatewayMetrics()
    windows = metrics.watch_drift(4)
    windows.serve(DriftReference.from_manifest("abc", ["quality", "speed"], MANIFEST))
    decisions = [decision(0.02, "cloud"), decision(0.46), decision(0.52), decision(0.97), decision(0.55, "cloud"), decision(0.7)]
    for one in decisions:
        windows.observe("abc", one)
    windows.observe("abc", Decision("edge", None, 0.5, "quality", 0.0, sticky=True))  # a kept route: no p, no decision
    values = scrape(metrics)
    last = decisions[-4:]
    assert values['ecvl_router_drift_window_decisions{scenario="quality"}'] == 4
    assert values['ecvl_router_drift_edge_share{scenario="quality"}'] == 0.75
    expected = population_stability_index(REFERENCE_COUNTS, p_histogram([d.p for d in last]))
    assert values['ecvl_router_drift_psi{scenario="quality"}'] == pytest.approx(expected)
    assert values['ecvl_router_drift_validation_edge_share{scenario="quality"}'] == 0.4
    assert values['ecvl_router_drift_window_decisions{scenario="speed"}'] == 0
    assert math.isnan(values['ecvl_router_drift_edge_share{scenario="speed"}'])
    assert 'ecvl_router_drift_psi{scenario="speed"}' not in values  # the manifest has no reference for it
    assert values['ecvl_router_p_count{bundle="abc",scenario="quality"}'] == 6  # the histogram keeps every decision
    assert values['ecvl_router_p_bucket{bundle="abc",le="0.05",scenario="quality"}'] == 1
    assert not any(name.startswith("ecvl_router_drift_window_bins") for name in values)  # stored counts stay internal


def test_a_new_bundle_starts_empty_windows_and_ignores_the_old_bundles_decisions() -> None:
    metrics = GatewayMetrics()
    windows = metrics.watch_drift(10)
    windows.serve(DriftReference.from_manifest("old", ["quality"], MANIFEST))
    for p in (0.1, 0.2, 0.3):
        windows.observe("old", decision(p))
    windows.serve(DriftReference.from_manifest("new", ["quality"], MANIFEST))
    windows.observe("old", decision(0.4))  # a request that decided with the old bundle during the swap
    windows.observe("new", decision(0.9, "cloud"))
    values = scrape(metrics)
    assert values['ecvl_router_drift_window_decisions{scenario="quality"}'] == 1
    assert values['ecvl_router_drift_edge_share{scenario="quality"}'] == 0.0
    assert values['ecvl_router_p_count{bundle="old",scenario="quality"}'] == 4
    stored = {sample.labels["bin"]: sample.value for family in metrics.registry.collect() if family.name == "ecvl_router_drift_window_bins"
              for sample in family.samples if sample.labels["bundle"] == "old"}
    assert stored and not any(stored.values())


_WORKER = r"""
import json, os, sys
from ecvl_router.serve.drift import DriftReference
from ecvl_router.serve.metrics import GatewayMetrics
from ecvl_router.serve.routing import Decision
from pathlib import Path
metrics = GatewayMetrics(multiprocess_dir=Path(sys.argv[1]))
windows = metrics.watch_drift(3)
windows.serve(DriftReference.from_manifest(sys.argv[2], ["quality"], json.loads(sys.argv[3])))
for p, route in json.loads(sys.argv[4]):
    windows.observe(sys.argv[2], Decision(route, p, 0.5, "quality", 1.0))
sys.stdout.write(f"{os.getpid()}\n" + metrics.exposition().decode())
"""


def test_windows_of_the_live_processes_add_up_in_multiprocess_mode(tmp_path: Path) -> None:
    """Two processes writing to one multiprocess folder: a scrape combines both windows (each of the last 3);
    once one is marked dead its window leaves the scrape; a process on another bundle is not mixed in."""
    from prometheus_client import multiprocess

    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}

    def worker(bundle: str, decisions: list[tuple[float, str]]) -> tuple[int, dict[str, float]]:
        done = subprocess.run([sys.executable, "-c", _WORKER, str(folder), bundle, json.dumps(MANIFEST), json.dumps(decisions)],
                              env=env, capture_output=True, text=True, check=True)
        pid, exposition = done.stdout.split("\n", 1)
        return int(pid), metric_values(exposition)

    first, _ = worker("abc", [(0.9, "edge"), (0.12, "cloud"), (0.13, "cloud"), (0.14, "cloud")])
    _, both = worker("abc", [(0.91, "edge"), (0.92, "edge")])
    assert both['ecvl_router_drift_window_decisions{scenario="quality"}'] == 5
    assert both['ecvl_router_drift_edge_share{scenario="quality"}'] == pytest.approx(2 / 5)
    expected = population_stability_index(REFERENCE_COUNTS, p_histogram([0.12, 0.13, 0.14, 0.91, 0.92]))
    assert both['ecvl_router_drift_psi{scenario="quality"}'] == pytest.approx(expected)
    assert both['ecvl_router_p_count{bundle="abc",scenario="quality"}'] == 6
    multiprocess.mark_process_dead(first, str(folder))
    _, other = worker("xyz", [(0.5, "edge")])  # scrapes for its own bundle
    assert other['ecvl_router_drift_window_decisions{scenario="quality"}'] == 1
    _, alone = worker("abc", [])
    assert alone['ecvl_router_drift_window_decisions{scenario="quality"}'] == 2  # the dead process's window is gone


# ---------------------------------------------------------------------------------------- through the HTTP app
def test_gateway_metrics_show_the_p_and_drift_of_its_requests_and_reset_on_reload(sim_backends, tiny_bundle: Path, tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ecvl_router.serve.app import create_app
    from ecvl_router.serve.config import load_gateway_config
    from ecvl_router.serve.gateway import Gateway
    from ecvl_router.serve.reload import Reloader

    monkeypatch.setenv("TEST_ADMIN_KEYS", "admin-key-0123")
    config = tmp_path / "gateway.yaml"

    def configure(bundle: Path) -> None:
        config.write_text(yaml.safe_dump({"bundle": str(bundle), "edge": {"base_url": sim_backends["edge"]},
                                          "cloud": {"base_url": sim_backends["cloud"]}, "admin_keys_env": "TEST_ADMIN_KEYS",
                                          "drift": {"window": 5}}))

    configure(tiny_bundle)
    gateway = Gateway.from_config(load_gateway_config(config))
    server = ThreadServer(create_app(gateway, reloader=Reloader(gateway, config))).start()
    digest = bundle_digest(tiny_bundle)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    try:
        ps = []
        for index in range(7):
            body = {"model": "ecvl-router:speed", "messages": [{"role": "user", "content": f"how many value are there {index} ?"}]}
            response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
            assert response.status_code == 200 and response.headers["x-ecvl-route"] == "edge"
            ps.append(float(response.headers["x-ecvl-p"]))
        values = metric_values(httpx.get(server.url + "/metrics").text)
        assert values[f'ecvl_router_p_count{{bundle="{digest}",scenario="speed"}}'] == 7
        assert values['ecvl_router_drift_window_decisions{scenario="speed"}'] == 5
        assert values['ecvl_router_drift_edge_share{scenario="speed"}'] == 1.0  # speed's tau is pinned at 0
        reference = manifest["p_reference"]["speed"]["counts"]
        assert values['ecvl_router_drift_psi{scenario="speed"}'] == pytest.approx(population_stability_index(reference, p_histogram(ps[-5:])))
        assert values['ecvl_router_drift_validation_edge_share{scenario="speed"}'] == pytest.approx(manifest["scenarios"]["speed"]["val_metrics"]["ca"])
        assert values['ecvl_router_drift_window_decisions{scenario="quality"}'] == 0

        configure(bundle_variant(tiny_bundle, tmp_path / "variant", taus={"speed": 1.0}))
        reloaded = httpx.post(server.url + "/admin/reload", headers={"Authorization": "Bearer admin-key-0123"}, timeout=120)
        assert reloaded.status_code == 200, reloaded.text
        new = reloaded.json()["bundle"]
        assert new != digest
        values = metric_values(httpx.get(server.url + "/metrics").text)
        assert values['ecvl_router_drift_window_decisions{scenario="speed"}'] == 0
        response = httpx.post(server.url + "/v1/chat/completions", json={"model": "ecvl-router:speed", "messages": [
            {"role": "user", "content": "what is the colour ?"}]}, timeout=60)
        assert response.headers["x-ecvl-bundle"] == new and response.headers["x-ecvl-decision"] == "cloud"
        values = metric_values(httpx.get(server.url + "/metrics").text)
        assert values['ecvl_router_drift_window_decisions{scenario="speed"}'] == 1
        assert values['ecvl_router_drift_edge_share{scenario="speed"}'] == 0.0
        assert values[f'ecvl_router_p_count{{bundle="{new}",scenario="speed"}}'] == 1
        assert values[f'ecvl_router_p_count{{bundle="{digest}",scenario="speed"}}'] == 7
    finally:
        server.stop()
