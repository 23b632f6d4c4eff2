"""A query's source (X-ECVL-Source) reaches the routers that read it, at the router and through the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ecvl_router.data import load_rsd
from ecvl_router.serve import QueryRouter
from tests.cli_support import invoke
from tests.serve_support import demo_data, train_bundle, write_tiny_encoders  # noqa: F401
from tests.test_serve_gateway import backend_sims, gateway_server, sims  # noqa: F401


@pytest.fixture(scope="module")
def lookup_bundle(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lookup-bundle")
    return train_bundle(demo_data, root / "run", root / "cache", write_tiny_encoders(root / "encoders"), router="lookup")


@pytest.fixture(scope="module")
def lookup_router(lookup_bundle: Path) -> Iterator[QueryRouter]:
    router = QueryRouter.from_bundle(lookup_bundle)
    yield router
    router.close()


def _question_and_source(demo_data: Path, router: QueryRouter) -> tuple[str, str]:
    """A demo question whose p with its source differs from its p without (its last sentence's mean over every source)."""
    for item in load_rsd(demo_data).items.to_dict("records"):
        with_source = router.decide(item["question"], None, "quality", source=item["source"])
        if with_source.p != router.decide(item["question"], None, "quality").p:
            return item["question"], item["source"]
    raise AssertionError("no demo item's cell gap differs from its last sentence's")


def _post(server, question: str, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "ecvl-router:quality", "messages": [{"role": "user", "content": question}]}
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_the_source_header_decides_like_the_router_given_that_source(lookup_router, demo_data, sims) -> None:
    question, source = _question_and_source(demo_data, lookup_router)
    expected = lookup_router.decide(question, None, "quality", source=source)
    alone = lookup_router.decide(question, None, "quality")
    with backend_sims(sims) as servers, gateway_server(lookup_router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
        reply = _post(gateway, question, {"X-ECVL-Source": source})
        assert reply.status_code == 200, reply.text
        assert float(reply.headers["X-ECVL-P"]) == pytest.approx(expected.p, abs=1e-6)
        without = _post(gateway, question, {})
        assert float(without.headers["X-ECVL-P"]) == pytest.approx(alone.p, abs=1e-6)
        for bad in ("", "x" * 201):
            error = _post(gateway, question, {"X-ECVL-Source": bad})
            assert error.status_code == 400 and error.json()["error"]["param"] == "X-ECVL-Source"


def test_route_takes_the_source_too(lookup_bundle, lookup_router, demo_data) -> None:
    question, source = _question_and_source(demo_data, lookup_router)
    for given in (source, None):
        extra = ("--source", given) if given else ()
        decision = json.loads(invoke("route", lookup_bundle, "--question", question, "--scenario", "quality", "--json", *extra).stdout)
        assert decision["p"] == pytest.approx(lookup_router.decide(question, None, "quality", source=given).p, abs=1e-6)
