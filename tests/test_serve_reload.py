"""Hot reload of the router bundle in one gateway on 127.0.0.1: ``POST /admin/reload`` behind the admin keys, every
answer naming the bundle that decided it, no failed request while bundles are swapped under load, a request in
flight finishing on the old bundle, bundles that are refused while the old one keeps serving, and a replaced router
released in a process whose heap is frozen."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from ecvl_router.learning.bundle import bundle_digest
from ecvl_router.serve.app import create_app
from ecvl_router.serve.config import load_gateway_config
from ecvl_router.serve.gateway import Gateway
from ecvl_router.serve.heap import freeze_heap
from ecvl_router.serve.reload import Hangups, Reloader
from ecvl_router.serve.routing import QueryRouter
from tests.serve_support import (  # noqa: F401
    QUALITY_REQUEST, Load, ThreadServer, broken_bundle, bundle_variant, demo_data, image_message, metric_values, sim_backends,
    tiny_bundle, wait_until,
)

ADMIN_KEY, CLIENT_KEY = "admin-key-0123", "client-key-4567"


@pytest.fixture(scope="module")
def bundles(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {
        "cloud-quality": tiny_bundle,
        "edge-quality": bundle_variant(tiny_bundle, root / "edge-quality", taus={"quality": 0.0}),
        "broken": broken_bundle(tiny_bundle, root / "broken"),
        "other-pair": bundle_variant(tiny_bundle, root / "other-pair", edge_model="another-edge-model"),
    }


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ADMIN_KEYS", ADMIN_KEY)
    monkeypatch.setenv("TEST_CLIENT_KEYS", CLIENT_KEY)


def write_config(path: Path, bundle: Path, backends: dict[str, str], **settings) -> Path:
    document = {"bundle": str(bundle), "edge": {"base_url": backends["edge"]}, "cloud": {"base_url": backends["cloud"]},
                "api_keys_env": "TEST_CLIENT_KEYS", "admin_keys_env": "TEST_ADMIN_KEYS", **settings}
    path.write_text(yaml.safe_dump(document))
    return path


@contextmanager
def gateway_on(config: Path) -> Iterator[tuple[ThreadServer, Gateway]]:
    """The gateway of ``config`` (its bundle loaded from the file, reloaded from it) on 127.0.0.1."""
    gateway = Gateway.from_config(load_gateway_config(config))
    server = ThreadServer(create_app(gateway, reloader=Reloader(gateway, config))).start()
    try:
        yield server, gateway
    finally:
        server.stop()


def reload(server: ThreadServer, key: str | None = ADMIN_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/admin/reload", headers=headers, timeout=120)


def client_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


def test_every_answer_names_the_bundle_that_decided(bundles, sim_backends, keys, tmp_path: Path) -> None:
    digest = bundle_digest(bundles["cloud-quality"])
    assert len(digest) == 12 and int(digest, 16) >= 0
    with gateway_on(write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends)) as (server, _):
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60)
        raw = client.chat.completions.with_raw_response.create(**QUALITY_REQUEST)
        assert raw.headers["x-ecvl-bundle"] == digest and raw.parse().ecvl["bundle"] == digest
        chunks = list(client.chat.completions.create(**QUALITY_REQUEST, stream=True))
        assert chunks[0].ecvl["bundle"] == digest
        models = httpx.get(server.url + "/v1/models", headers=client_headers()).json()["data"]
        assert [entry["ecvl"]["bundle"] for entry in models] == [digest] * len(models)
        assert httpx.get(server.url + "/readyz").json()["bundle_hash"] == digest
        assert metric_values(httpx.get(server.url + "/metrics").text)[f'ecvl_router_serving_processes{{bundle="{digest}"}}'] == 1


def test_reloading_needs_an_admin_key(bundles, sim_backends, keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = bundle_digest(bundles["cloud-quality"])
    with gateway_on(write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends)) as (server, _):
        assert reload(server, None).status_code == 401
        assert reload(server, "wrong").status_code == 401
        refused = reload(server, CLIENT_KEY)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"
        reloaded = reload(server)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json() == {"loaded": True, "bundle": digest, "previous": digest, "message": reloaded.json()["message"]}
    without_admin = write_config(tmp_path / "open.yaml", bundles["cloud-quality"], sim_backends, admin_keys_env=None, api_keys_env=None)
    with gateway_on(without_admin) as (server, _):
        off = reload(server)
        assert off.status_code == 403 and off.json()["error"]["code"] == "admin_disabled"


def test_reload_under_load_fails_no_request_and_refuses_bad_bundles(bundles, sim_backends, keys, tmp_path: Path, caplog) -> None:
    digests = {name: bundle_digest(path) for name, path in bundles.items() if name in ("cloud-quality", "edge-quality")}
    route_of = {digests["cloud-quality"]: "cloud", digests["edge-quality"]: "edge"}
    config = write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends)
    with gateway_on(config) as (server, _), Load(server.url, QUALITY_REQUEST, headers=client_headers()) as load:
        load.wait_for(10)
        write_config(config, bundles["edge-quality"], sim_backends)
        reloaded = reload(server)
        swapped = time.monotonic()
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["bundle"] == digests["edge-quality"] and reloaded.json()["previous"] == digests["cloud-quality"]
        load.wait_for(10, after=swapped)
        for bad, reason in (("broken", "cannot load the bundle"), ("other-pair", "does not fit the configuration")):
            write_config(config, bundles[bad], sim_backends)
            refused = reload(server)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "bundle_refused"
            assert reason in refused.json()["error"]["message"] and digests["edge-quality"] in refused.json()["error"]["message"]
        load.wait_for(20, after=swapped)
        metrics = metric_values(httpx.get(server.url + "/metrics").text)
    assert load.failures() == []
    assert {answer.bundle for answer in load.answers} == set(route_of)
    assert all(answer.route == route_of[answer.bundle] for answer in load.answers)
    assert all(answer.bundle == digests["edge-quality"] for answer in load.answers if answer.sent > swapped)
    assert metrics['ecvl_router_bundle_reloads_total{outcome="loaded"}'] == 1
    assert metrics['ecvl_router_bundle_reloads_total{outcome="refused"}'] == 2
    assert metrics[f'ecvl_router_serving_processes{{bundle="{digests["cloud-quality"]}"}}'] == 0
    assert metrics[f'ecvl_router_serving_processes{{bundle="{digests["edge-quality"]}"}}'] == 1
    refusals = [record for record in caplog.records if record.name == "ecvl_router.serve.reload" and record.levelname == "ERROR"]
    assert len(refusals) == 2 and all("bundle reload refused" in record.getMessage() for record in refusals)


def slow_image_server(release: threading.Event, asked: threading.Event) -> ThreadServer:
    """A server whose one image is sent only once ``release`` is set (``asked`` is set when it is requested)."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format="PNG")
    app = FastAPI()

    @app.get("/image.png")
    def image() -> Response:
        asked.set()
        release.wait(60)
        return Response(buffer.getvalue(), media_type="image/png")

    return ThreadServer(app).start()


def refuses_decisions(router: QueryRouter) -> bool:
    """Whether ``router`` was closed: a decision raises RuntimeError."""
    try:
        router.decide("Is it closed?", None, "quality")
    except RuntimeError:
        return True
    return False


def test_a_request_in_flight_finishes_on_the_old_bundle_which_is_then_closed(bundles, sim_backends, keys, tmp_path: Path) -> None:
    old, new = bundle_digest(bundles["cloud-quality"]), bundle_digest(bundles["edge-quality"])
    release, asked = threading.Event(), threading.Event()
    images = slow_image_server(release, asked)
    config = write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends, images={"allow_private_networks": True})
    in_flight: list[httpx.Response] = []
    body = {"model": "ecvl-router:quality", "messages": image_message("What is the colour of the square?", images.url + "/image.png")}
    try:
        with gateway_on(config) as (server, gateway):
            old_router = gateway.router
            sender = threading.Thread(target=lambda: in_flight.append(
                httpx.post(server.url + "/v1/chat/completions", json=body, headers=client_headers(), timeout=120)))
            sender.start()
            assert asked.wait(60)
            write_config(config, bundles["edge-quality"], sim_backends, images={"allow_private_networks": True})
            assert reload(server).json()["bundle"] == new
            fresh = httpx.post(server.url + "/v1/chat/completions", json=QUALITY_REQUEST, headers=client_headers(), timeout=60)
            assert fresh.headers["x-ecvl-bundle"] == new and fresh.headers["x-ecvl-route"] == "edge"
            assert gateway.router is not old_router
            release.set()
            sender.join(timeout=60)
            (answer,) = in_flight
            assert answer.status_code == 200 and answer.headers["x-ecvl-bundle"] == old and answer.headers["x-ecvl-route"] == "cloud"
            wait_until(lambda: refuses_decisions(old_router), 30)
    finally:
        release.set()
        images.stop()


def test_a_sighup_that_comes_before_the_gateway_runs_is_kept_for_it() -> None:
    hangups, calls = Hangups(), []
    previous = signal.getsignal(signal.SIGHUP)
    hangups.install()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: hangups.pending, 10)

        async def serve() -> None:
            hangups.attach(lambda: calls.append("reload"))
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(200):
                if len(calls) == 2:
                    return
                await asyncio.sleep(0.05)

        asyncio.run(serve())
        assert calls == ["reload", "reload"] and not hangups.pending
    finally:
        hangups.uninstall()
    assert signal.getsignal(signal.SIGHUP) == previous



def test_in_a_frozen_heap_the_replaced_router_is_still_released(bundles, sim_backends, keys, tmp_path: Path) -> None:
    config = write_config(tmp_path / "gateway.yaml", bundles["cloud-quality"], sim_backends)
    with gateway_on(config) as (server, gateway):
        replaced = weakref.ref(gateway.router)
        freeze_heap()  # as `serve` does once the gateway is loaded
        try:
            write_config(config, bundles["edge-quality"], sim_backends)
            assert reload(server).status_code == 200
            wait_until(lambda: replaced() is None, 30)
            wait_until(lambda: gc.get_freeze_count() > 0, 30)  # and what is left frozen again
        finally:
            gc.unfreeze()
