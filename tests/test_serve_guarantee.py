"""A guaranteed scenario reaches the gateway: /v1/models lists its promise and its certified τ routes its requests."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app as cli_app
from ecvl_router.client import RouterClient
from ecvl_router.serve import QueryRouter
from tests.serve_support import CLOUD, EDGE, demo_data, write_tiny_encoders  # noqa: F401
from tests.test_serve_gateway import backend_sims, gateway_server, sims  # noqa: F401

SCENARIOS = "- {name: careful, mes: 6, max_quality_drop: 0.1, confidence: 0.8}\n- {name: quality, alpha: 1.2, beta: 0.1, gamma: 0.001}\n"


@pytest.fixture(scope="module")
def guaranteed_router(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> QueryRouter:
    root = tmp_path_factory.mktemp("guaranteed-bundle")
    (root / "scenarios.yaml").write_text(SCENARIOS)
    args = ["train", "--data", demo_data, "--edge", EDGE, "--cloud", CLOUD, "--out", root / "run", "--router", "gbdt",
            "--cache-dir", root / "cache", "--scenario", root / "scenarios.yaml", "--encoders", write_tiny_encoders(root / "encoders")]
    result = CliRunner().invoke(cli_app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return QueryRouter.from_bundle(root / "run")


def test_models_list_the_promise_and_requests_use_the_certified_tau(guaranteed_router: QueryRouter, sims) -> None:
    entry = json.loads((Path(guaranteed_router.bundle) / "manifest.json").read_text())["scenarios"]["careful"]
    assert "at most 0.1 with confidence 0.8" in entry["promise"]
    with backend_sims(sims) as servers, gateway_server(guaranteed_router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
        models = {model["id"]: model["ecvl"] for model in httpx.get(gateway.url + "/v1/models", timeout=30).json()["data"]}
        assert models["ecvl-router:careful"]["promise"] == entry["promise"]
        assert models["ecvl-router:careful"]["tau"] == pytest.approx(entry["tau"])
        assert models["ecvl-router:quality"]["promise"] is None
        body = {"model": "ecvl-router:careful", "messages": [{"role": "user", "content": "How many red circles are there?"}]}
        reply = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        assert float(reply.headers["X-ECVL-Tau"]) == pytest.approx(entry["tau"])
        assert reply.headers["X-ECVL-Scenario"] == "careful"


def test_the_client_states_the_promise(guaranteed_router: QueryRouter) -> None:
    entry = json.loads((Path(guaranteed_router.bundle) / "manifest.json").read_text())["scenarios"]["careful"]
    with RouterClient(guaranteed_router.bundle) as client:
        assert client.promise("careful") == entry["promise"]
        assert client.promise("quality") is None
        assert client.decide("How many red circles are there?", None, "careful").tau == pytest.approx(entry["tau"])
        with pytest.raises(ValueError, match="unknown"):
            client.promise("nonexistent")
