"""The gateway serves an MES a scenario was not trained at (X-ECVL-MES) when its bundle is an ecvl-multi router."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ecvl_router.serve import QueryRouter
from tests.serve_support import demo_data, tiny_bundle, train_bundle, write_tiny_encoders  # noqa: F401
from tests.test_serve_gateway import backend_sims, gateway_server, sims  # noqa: F401


@pytest.fixture(scope="module")
def multi_router(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> QueryRouter:
    root = tmp_path_factory.mktemp("multi-bundle")
    bundle = train_bundle(demo_data, root / "run", root / "cache", write_tiny_encoders(root / "encoders"), router="ecvl-multi")
    return QueryRouter.from_bundle(bundle)


def _post(server, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "ecvl-router:quality", "messages": [{"role": "user", "content": "How many red circles are there?"}]}
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_an_ecvl_multi_gateway_serves_any_mes_with_the_tau_of_that_level(multi_router, sims) -> None:
    choice = multi_router.trained.choice("quality")
    with backend_sims(sims) as servers, gateway_server(multi_router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
        default = _post(gateway, {})
        assert default.status_code == 200 and float(default.headers["X-ECVL-MES"]) == choice.scenario.mes
        assert float(default.headers["X-ECVL-Tau"]) == pytest.approx(choice.tau)
        for mes in (3.0, 8.0, 9.5):
            reply = _post(gateway, {"X-ECVL-MES": f"{mes:g}"})
            assert reply.status_code == 200, reply.text
            expected = multi_router.decide("How many red circles are there?", None, "quality", mes=mes)
            assert float(reply.headers["X-ECVL-MES"]) == mes
            assert float(reply.headers["X-ECVL-Tau"]) == pytest.approx(choice.tau_at(mes))
            assert float(reply.headers["X-ECVL-P"]) == pytest.approx(expected.p, abs=1e-5)
            assert reply.headers["X-ECVL-Decision"] == expected.route
        models = httpx.get(gateway.url + "/v1/models", timeout=30).json()["data"]
        assert all(entry["ecvl"]["any_mes"] for entry in models)
        for bad, param in (("high", "X-ECVL-MES"), ("11", "X-ECVL-MES"), ("0", "X-ECVL-MES")):
            error = _post(gateway, {"X-ECVL-MES": bad})
            assert error.status_code == 400 and error.json()["error"]["param"] == param


def test_a_pair_router_refuses_another_mes_but_accepts_its_own(tiny_bundle, sims) -> None:
    router = QueryRouter.from_bundle(tiny_bundle)
    trained_mes = router.trained.choice("quality").scenario.mes
    with backend_sims(sims) as servers, gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
        refused = _post(gateway, {"X-ECVL-MES": f"{trained_mes + 1:g}"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "mes_not_served"
        assert _post(gateway, {"X-ECVL-MES": f"{trained_mes:g}"}).status_code == 200
