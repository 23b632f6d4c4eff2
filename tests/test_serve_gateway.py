"""The routing gateway over HTTP on 127.0.0.1, spoken to with the official ``openai`` client.

Servers (gateway, simulated backends, the recording fake backend) run in background threads of this
process; tests/test_serve_processes.py repeats the essentials with separate processes and real encoders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from ecvl_router.serve import GatewayConfig, QueryRouter
from ecvl_router.serve.app import create_app
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from ecvl_router.serve.conversation import CLOUD_MARKER, EDGE_MARKER
from ecvl_router.serve.gateway import Gateway
from ecvl_router.data import load_rsd
from tests.fake_openai import FakeServer, answer_for
from tests.serve_support import CLOUD, EDGE, ThreadServer, data_uri, demo_data, image_message, tiny_bundle  # noqa: F401

SECRET = "sk-backend-secret-0123456789"


@pytest.fixture(scope="module")
def router(tiny_bundle: Path) -> QueryRouter:
    return QueryRouter.from_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def sims(demo_data: Path) -> dict[str, SimulatedModel]:
    return {"edge": SimulatedModel.from_dataset(demo_data, EDGE), "cloud": SimulatedModel.from_dataset(demo_data, CLOUD)}


@contextmanager
def backend_sims(sims: dict[str, SimulatedModel]) -> Iterator[dict[str, ThreadServer]]:
    servers = {role: ThreadServer(create_backend_sim_app(model, latency_scale=0)).start() for role, model in sims.items()}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@contextmanager
def gateway_server(router: QueryRouter, edge_url: str, cloud_url: str, **settings) -> Iterator[ThreadServer]:
    edge = {"base_url": edge_url, **settings.pop("edge", {})}
    cloud = {"base_url": cloud_url, **settings.pop("cloud", {})}
    config = GatewayConfig(bundle=router.bundle, edge=edge, cloud=cloud, **settings)
    server = ThreadServer(create_app(Gateway(config, router))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(router: QueryRouter, sims, tmp_path_factory: pytest.TempPathFactory):
    """Two simulated backends and a gateway in front of them, with a decision log."""
    log = tmp_path_factory.mktemp("gateway") / "decisions.jsonl"
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", decision_log=log) as gateway:
            yield {"gateway": gateway, "edge": servers["edge"], "cloud": servers["cloud"], "log": log}


def client_for(server: ThreadServer, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


def sim_requests(server: ThreadServer) -> int:
    return httpx.get(server.url + "/sim/stats").json()["requests"]


@pytest.fixture(scope="module")
def items(demo_data: Path) -> list[dict]:
    rsd = load_rsd(demo_data)
    responses = rsd.responses.set_index(["item_id", "model"])["response"]
    rows = []
    for item in rsd.items.to_dict("records"):
        image = rsd.image_path(item["image"])
        rows.append({**item, "path": image, "edge_answer": responses[(item["item_id"], EDGE)], "cloud_answer": responses[(item["item_id"], CLOUD)]})
    return rows


def with_image(items: list[dict]) -> dict:
    return next(item for item in items if item["path"] is not None)


# ---------------------------------------------------------------------- routing and responses
def test_text_request_is_routed_and_annotated(stack, items) -> None:
    item = items[0]
    raw = client_for(stack["gateway"]).chat.completions.with_raw_response.create(
        model="ecvl-router:speed", messages=[{"role": "user", "content": item["question"]}]
    )
    completion = raw.parse()
    assert completion.model == EDGE and completion.choices[0].message.content == item["edge_answer"]
    ecvl = completion.ecvl
    assert ecvl["route"] == ecvl["decision"] == "edge" and ecvl["scenario"] == "speed" and ecvl["fallback"] is False
    assert 0 <= ecvl["p"] <= 1 and ecvl["tau"] == 0.0 and ecvl["router_ms"] > 0
    assert raw.headers["x-ecvl-route"] == "edge" and raw.headers["x-ecvl-scenario"] == "speed"
    assert float(raw.headers["x-ecvl-p"]) == pytest.approx(ecvl["p"], abs=1e-6)
    assert raw.headers["x-request-id"] == ecvl["request_id"]


def test_image_request_reaches_the_backend_with_its_image(stack, items) -> None:
    item = with_image(items)
    matched_before = httpx.get(stack["cloud"].url + "/sim/stats").json()["matched"]
    completion = client_for(stack["gateway"]).chat.completions.create(
        model="ecvl-router:quality", messages=image_message(item["question"], data_uri(item["path"]))
    )
    assert completion.ecvl["route"] == "cloud" and completion.model == CLOUD
    assert completion.choices[0].message.content == item["cloud_answer"]
    assert httpx.get(stack["cloud"].url + "/sim/stats").json()["matched"] == matched_before + 1


def test_each_scenario_routes_by_its_threshold(stack, items, router) -> None:
    client = client_for(stack["gateway"])
    item = with_image(items)
    expected = {"quality": "cloud", "speed": "edge", "privacy": "edge"}
    for scenario, route in expected.items():
        completion = client.chat.completions.create(model=f"ecvl-router:{scenario}", messages=image_message(item["question"], data_uri(item["path"])))
        ecvl = completion.ecvl
        assert ecvl["route"] == route and ecvl["scenario"] == scenario
        assert ecvl["tau"] == router.tau(scenario) and (ecvl["p"] >= ecvl["tau"]) == (route == "edge")
        assert completion.model == (EDGE if route == "edge" else CLOUD)


def test_scenario_from_model_name_header_or_default(stack) -> None:
    client = client_for(stack["gateway"])
    messages = [{"role": "user", "content": "What is shown?"}]
    assert client.chat.completions.create(model="ecvl-router", messages=messages).ecvl["scenario"] == "quality"
    by_header = client.chat.completions.create(model="ecvl-router", messages=messages, extra_headers={"X-ECVL-Scenario": "speed"})
    assert by_header.ecvl["scenario"] == "speed"
    with pytest.raises(openai.BadRequestError, match="different scenarios"):
        client.chat.completions.create(model="ecvl-router:quality", messages=messages, extra_headers={"X-ECVL-Scenario": "speed"})


def test_unknown_scenario_is_a_400_listing_the_known_ones(stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(stack["gateway"]).chat.completions.create(model="ecvl-router:fastest", messages=[{"role": "user", "content": "hi"}])
    assert "'fastest'" in caught.value.message and "quality, speed, privacy" in caught.value.message
    assert caught.value.body["code"] == "unknown_scenario"


def test_models_list_the_scenarios(stack, router) -> None:
    models = {model.id: model for model in client_for(stack["gateway"]).models.list()}
    assert set(models) == {"ecvl-router", "ecvl-router:quality", "ecvl-router:speed", "ecvl-router:privacy"}
    assert models["ecvl-router:privacy"].ecvl["cloud_allowed"] is False
    assert models["ecvl-router:speed"].ecvl["tau"] == router.tau("speed")
    assert client_for(stack["gateway"]).models.retrieve("ecvl-router:speed").id == "ecvl-router:speed"


def test_streaming_passes_chunks_through_with_the_decision_first(stack, items) -> None:
    item = with_image(items)
    client = client_for(stack["gateway"])
    for scenario, answer in (("speed", item["edge_answer"]), ("quality", item["cloud_answer"])):
        with client.chat.completions.with_streaming_response.create(
            model=f"ecvl-router:{scenario}", messages=image_message(item["question"], data_uri(item["path"])), stream=True,
            stream_options={"include_usage": True},
        ) as raw:
            assert raw.headers["content-type"].startswith("text/event-stream")
            assert raw.headers["x-ecvl-scenario"] == scenario
            chunks = list(raw.parse())
        assert chunks[0].ecvl["scenario"] == scenario and chunks[0].ecvl["route"] == raw.headers["x-ecvl-route"]
        assert all(not hasattr(chunk, "ecvl") or chunk is chunks[0] for chunk in chunks)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert text == answer  # the backend's text, unchanged
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


MARKERS_ONLY = {"markers": True, "keys": []}
"""Stickiness by the opt-in markers alone (no routes kept in the gateway)."""


def test_with_markers_a_cloud_conversation_stays_on_the_cloud_and_backends_never_see_the_marker(router, sims, items) -> None:
    item = items[1]
    with backend_sims(sims) as servers, FakeServer() as cloud:
        with gateway_server(router, servers["edge"].url + "/v1", cloud.base_url, cloud={"model": "good"}, stickiness=MARKERS_ONLY) as gateway:
            client = client_for(gateway)
            first = client.chat.completions.create(model="ecvl-router:quality", messages=[{"role": "user", "content": item["question"]}])
            assert first.ecvl["route"] == "cloud" and first.choices[0].message.content.startswith(CLOUD_MARKER)
            history = [
                {"role": "user", "content": item["question"]},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "And why?"},
            ]
            follow_up = client.chat.completions.create(model="ecvl-router:speed", messages=history)  # speed alone: edge
            assert follow_up.ecvl["route"] == "cloud" and follow_up.ecvl["sticky"] is True and follow_up.ecvl["p"] is None
            assert follow_up.choices[0].message.content == CLOUD_MARKER + answer_for("good", "And why?")
            forwarded = cloud.state.requests[-1]["body"]["messages"]
            assert forwarded[1]["content"] == first.choices[0].message.content.removeprefix(CLOUD_MARKER)
            assert CLOUD_MARKER not in json.dumps(cloud.state.requests, ensure_ascii=False)
            private = client.chat.completions.create(model="ecvl-router:privacy", messages=history)
            assert private.ecvl["route"] == "edge" and private.ecvl["sticky"] is False
        with gateway_server(router, servers["edge"].url + "/v1", cloud.base_url, cloud={"model": "good"},
                            stickiness={**MARKERS_ONLY, "cloud": False}) as gateway:
            plain = client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=history)
            assert plain.ecvl["route"] == "edge" and plain.ecvl["sticky"] is False


def test_with_markers_an_edge_conversation_stays_on_the_edge_unless_turned_off(router) -> None:
    with FakeServer() as edge, FakeServer() as cloud:
        with gateway_server(router, edge.base_url, cloud.base_url, edge={"model": "good"}, cloud={"model": "good"}, stickiness=MARKERS_ONLY) as gateway:
            client = client_for(gateway)
            first = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Hi"}])
            assert first.ecvl["route"] == "edge" and first.choices[0].message.content.startswith(EDGE_MARKER)
            history = [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": first.choices[0].message.content}]},
                {"role": "user", "content": "And why?"},
            ]
            follow_up = client.chat.completions.create(model="ecvl-router:quality", messages=history)  # quality alone: cloud
            assert follow_up.ecvl["route"] == "edge" and follow_up.ecvl["sticky"] is True and follow_up.ecvl["p"] is None
            assert follow_up.choices[0].message.content.startswith(EDGE_MARKER) and cloud.state.requests == []
            assert EDGE_MARKER not in json.dumps(edge.state.requests, ensure_ascii=False)
            stripped = [{**message, "content": "Hi there"} if message["role"] == "assistant" else message for message in history]
            unmarked = client.chat.completions.create(model="ecvl-router:quality", messages=stripped)
            assert unmarked.ecvl["route"] == "cloud" and unmarked.ecvl["sticky"] is False  # no marker, no stickiness
        with gateway_server(router, edge.base_url, cloud.base_url, edge={"model": "good"}, cloud={"model": "good"},
                            stickiness={**MARKERS_ONLY, "edge": False}) as gateway:
            client = client_for(gateway)
            answer = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Hi"}])
            assert answer.choices[0].message.content == answer_for("good", "Hi")  # no marker when not sticky
            follow_up = client.chat.completions.create(model="ecvl-router:quality", messages=history)
            assert follow_up.ecvl["route"] == "cloud" and follow_up.ecvl["sticky"] is False


# ---------------------------------------------------------------------- fallbacks and retries
def test_edge_failure_falls_back_to_the_cloud(router, sims, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", decision_log=log) as gateway:
            servers["edge"].stop()
            completion = client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Count the cats."}])
            assert completion.ecvl["decision"] == "edge" and completion.ecvl["route"] == "cloud" and completion.ecvl["fallback"] is True
            assert completion.model == CLOUD
            metrics = httpx.get(gateway.url + "/metrics").text
            assert 'ecvl_router_fallbacks_total{from_route="edge",reason="connection",to_route="cloud"} 1.0' in metrics
            assert httpx.get(gateway.url + "/readyz").status_code == 503
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["fallback"] is True and record["route"] == "cloud" and record["attempts"] == {"edge": 2, "cloud": 1}
    assert record["backend_errors"] == [{"route": "edge", "kind": "connection", "status": None}]


def test_privacy_scenario_never_contacts_the_cloud(router, sims) -> None:
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
            client = client_for(gateway)
            for _ in range(3):
                assert client.chat.completions.create(model="ecvl-router:privacy", messages=[{"role": "user", "content": "Read my note."}]).ecvl["route"] == "edge"
            servers["edge"].stop()
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="ecvl-router:privacy", messages=[{"role": "user", "content": "Read my note."}])
            assert caught.value.status_code == 503 and "cloud_allowed: false" in caught.value.message
            assert sim_requests(servers["cloud"]) == 0
            assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_cloud_failure_falls_back_to_the_edge_only_when_allowed(router, sims) -> None:
    with backend_sims(sims) as servers:
        servers["cloud"].stop()
        messages = [{"role": "user", "content": "Describe the scene."}]
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
            completion = client_for(gateway).chat.completions.create(model="ecvl-router:quality", messages=messages)
            assert completion.ecvl["decision"] == "cloud" and completion.ecvl["route"] == "edge" and completion.ecvl["fallback"]
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", fallback={"cloud_to_edge": False}) as gateway:
            with pytest.raises(openai.APIStatusError) as caught:
                client_for(gateway).chat.completions.create(model="ecvl-router:quality", messages=messages)
            assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_unavailable"


def test_backend_errors_are_retried_with_backoff(router, sims, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    retry = {"max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    with FakeServer() as fake:
        with gateway_server(router, fake.base_url, fake.base_url, edge={"model": "flaky", "retry": retry}, cloud={"model": "good"}, decision_log=log) as gateway:
            completion = client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Retry me."}])
    assert completion.ecvl["route"] == "edge" and completion.choices[0].message.content == answer_for("flaky", "Retry me.")
    assert json.loads(log.read_text())["attempts"] == {"edge": 3}


def test_backend_keys_are_sent_but_never_echoed_or_logged(router, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("EDGE_KEY", SECRET)
    monkeypatch.setenv("CLOUD_KEY", SECRET)
    log = tmp_path / "decisions.jsonl"
    with FakeServer() as fake:
        backend = {"model": "echo-auth"}
        with gateway_server(router, fake.base_url, fake.base_url, edge={**backend, "api_key_env": "EDGE_KEY"},
                            cloud={**backend, "api_key_env": "CLOUD_KEY"}, decision_log=log) as gateway:
            response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "ecvl-router:speed", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert fake.state.requests[0]["authorization"] == f"Bearer {SECRET}"
    assert response.status_code == 502 and "***" in response.text and SECRET not in response.text
    assert SECRET not in log.read_text() and SECRET not in caplog.text


@pytest.mark.parametrize("scenario", ["speed", "quality", "privacy"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_backends_4xx_reaches_the_client_and_no_other_backend_is_tried(router, scenario: str, stream: bool) -> None:
    with FakeServer() as fake:
        with gateway_server(router, fake.base_url, fake.base_url, edge={"model": "strict"}, cloud={"model": "strict"}) as gateway:
            with pytest.raises(openai.BadRequestError) as caught:
                client_for(gateway).chat.completions.create(
                    model=f"ecvl-router:{scenario}", messages=[{"role": "user", "content": "hi"}], logit_bias={"42": 1}, stream=stream
                )
        assert len(fake.state.requests) == 1  # neither retried nor sent to the other backend
    assert caught.value.status_code == 400 and caught.value.body["code"] == "upstream_rejected"
    assert "logit_bias is not supported" in caught.value.message


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("temperature", "hot"), ("temperature", 3), ("temperature", True), ("top_p", 1.5), ("n", "x"), ("n", 0), ("n", 1.5),
     ("max_tokens", -1), ("max_tokens", "10"), ("max_completion_tokens", 0), ("stop", 7), ("stop", ["a", 1]),
     ("stop", ["a"] * 5), ("seed", 1.5), ("presence_penalty", 9), ("frequency_penalty", "x"), ("logprobs", "yes"),
     ("top_logprobs", 50), ("logit_bias", {"1": 500}), ("user", 5)],
)
@pytest.mark.parametrize("scenario", ["quality", "privacy"])
def test_invalid_sampling_parameters_are_a_400_naming_them_and_reach_no_backend(strict_gateway, parameter, value, scenario) -> None:
    gateway, servers = strict_gateway
    sent_before = sim_requests(servers["edge"]) + sim_requests(servers["cloud"])
    body = {**_user("hi"), "model": f"ecvl-router:{scenario}", parameter: value}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == parameter and error["code"] == "invalid_parameter" and f"'{parameter}'" in error["message"]
    assert sim_requests(servers["edge"]) + sim_requests(servers["cloud"]) == sent_before


def test_valid_sampling_parameters_pass(router) -> None:
    with FakeServer() as fake:
        with gateway_server(router, fake.base_url, fake.base_url, edge={"model": "good"}, cloud={"model": "good"}) as gateway:
            completion = client_for(gateway).chat.completions.create(
                model="ecvl-router:speed", messages=[{"role": "user", "content": "hi"}], temperature=0.7, top_p=1, n=1,
                max_tokens=16, stop=["\n\n"], seed=3, presence_penalty=-0.5, logit_bias={"42": -100}, user="u1",
            )
        assert completion.choices and fake.state.requests[0]["body"]["temperature"] == 0.7


# ---------------------------------------------------------------------- security and bad input
def test_client_api_keys(router, sims, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_KEYS", "key-one, key-two")
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", api_keys_env="GATEWAY_KEYS") as gateway:
            messages = [{"role": "user", "content": "hi"}]
            assert client_for(gateway, "key-two").chat.completions.create(model="ecvl-router", messages=messages).choices
            with pytest.raises(openai.AuthenticationError) as wrong:
                client_for(gateway, "key-three").chat.completions.create(model="ecvl-router", messages=messages)
            assert wrong.value.body["code"] == "invalid_api_key" and "key-three" not in wrong.value.message
            missing = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "ecvl-router", "messages": messages})
            assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
            assert httpx.get(gateway.url + "/v1/models").status_code == 401
            assert httpx.get(gateway.url + "/healthz").status_code == 200
            assert sim_requests(servers["edge"]) + sim_requests(servers["cloud"]) == 1


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in its header but holds almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _user(content) -> dict:
    return {"model": "ecvl-router", "messages": [{"role": "user", "content": content}]}


def _image(url: str) -> dict:
    return _user([{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}])


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


MALFORMED: dict[str, tuple[object, int, str | None]] = {
    # name: (body: bytes, or an object sent as JSON; expected status; expected param)
    "not JSON": (b"{'model': 'ecvl-router'", 400, None),
    "empty body": (b"", 400, None),
    "truncated JSON": (b'{"model": "ecvl-router", "messages": [', 400, None),
    "not UTF-8": (b'{"model": "\xff\xfe"}', 400, None),
    "NaN constant": (b'{"model": "ecvl-router", "temperature": NaN, "messages": [{"role": "user", "content": "x"}]}', 400, None),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, 400, None),
    "JSON array": ([{"role": "user", "content": "hi"}], 400, None),
    "model missing": ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    "model not a string": ({"model": 7, "messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    "foreign model": ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    "messages missing": ({"model": "ecvl-router"}, 400, "messages"),
    "messages not a list": ({"model": "ecvl-router", "messages": {"role": "user"}}, 400, "messages"),
    "messages empty": ({"model": "ecvl-router", "messages": []}, 400, "messages"),
    "message not an object": ({"model": "ecvl-router", "messages": ["hi"]}, 400, "messages[0]"),
    "role missing": ({"model": "ecvl-router", "messages": [{"content": "hi"}]}, 400, "messages[0].role"),
    "wrong role": ({"model": "ecvl-router", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    "no user message": ({"model": "ecvl-router", "messages": [{"role": "system", "content": "be brief"}]}, 400, "messages"),
    "content missing": ({"model": "ecvl-router", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
    "content a number": (_user(42), 400, "messages[0].content"),
    "part not an object": (_user(["hi"]), 400, "messages[0].content[0]"),
    "unknown part type": (_user([{"type": "input_video", "video": "x"}]), 400, "messages[0].content[0].type"),
    "text part without text": (_user([{"type": "text"}]), 400, "messages[0].content[0].text"),
    "image part without url": (_user([{"type": "image_url", "image_url": {}}]), 400, "messages[0].content[0].image_url"),
    "stream not a boolean": ({**_user("hi"), "stream": "yes"}, 400, "stream"),
    "bad base64": (_image("data:image/png;base64,iVBOR***not-base64***"), 400, "messages[0].content[1].image_url.url"),
    "data URI without base64": (_image("data:image/png,rawbytes"), 400, "messages[0].content[1].image_url.url"),
    "non-image data": (_image("data:image/png;base64," + _b64(b"just some text, not an image" * 10)), 400, "messages[0].content[1].image_url.url"),
    "non-image MIME type": (_image("data:text/plain;base64," + _b64(b"hello")), 400, "messages[0].content[1].image_url.url"),
    "truncated image": (_image("data:image/png;base64," + _b64(_png(64, 64)[:60])), 400, "messages[0].content[1].image_url.url"),
    "decompression bomb": (_image("data:image/png;base64," + _b64(_png_header(100_000, 100_000))), 400, "messages[0].content[1].image_url.url"),
    "too many pixels": (_image("data:image/png;base64," + _b64(_png_header(5_000, 5_000))), 400, "messages[0].content[1].image_url.url"),
    "image over the byte limit": (_image("data:image/png;base64," + "A" * (2 * 2**20)), 400, "messages[0].content[1].image_url.url"),
    "unsupported URL scheme": (_image("file:///etc/passwd"), 400, "messages[0].content[1].image_url.url"),
    "too many images": (_user([{"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64(_png(8, 8))}}] * 3), 400, "messages"),
    "too many messages": ({"model": "ecvl-router", "messages": [{"role": "user", "content": "hi"}] * 40}, 400, "messages"),
    "body over the limit": ({"model": "ecvl-router", "messages": [{"role": "user", "content": "x" * (5 * 2**20)}]}, 413, None),
}


@pytest.fixture(scope="module")
def strict_gateway(router, sims):
    """A gateway with small limits: 4 MiB bodies, 1 MiB and 20 megapixels per image, 2 images, 32 messages."""
    limits = {"max_body_bytes": 4 * 2**20, "max_image_bytes": 2**20, "max_image_pixels": 20_000_000, "max_images": 2, "max_messages": 32}
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", limits=limits) as gateway:
            yield gateway, servers


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_requests_get_an_openai_style_4xx(strict_gateway, name: str) -> None:
    gateway, servers = strict_gateway
    body, status, param = MALFORMED[name]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(gateway.url + "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error" and error["param"] == param
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert sim_requests(servers["edge"]) + sim_requests(servers["cloud"]) == 0


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/v1/chat/completions", {"Content-Type": "text/plain"}, 415),
        ("POST", "/v1/chat/completions", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("GET", "/v1/chat/completions", {}, 405),
        ("POST", "/v1/completions", {"Content-Type": "application/json"}, 404),
        ("GET", "/v1/models/gpt-4o", {}, 404),
    ],
)
def test_wrong_content_types_methods_and_paths_get_openai_style_errors(strict_gateway, method, path, headers, status) -> None:
    gateway, _ = strict_gateway
    response = httpx.request(method, gateway.url + path, content=json.dumps(_user("hi")), headers=headers)
    assert response.status_code == status and response.json()["error"]["message"]
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_server_keeps_serving_after_bad_requests(strict_gateway) -> None:
    gateway, _ = strict_gateway
    for name in ("not JSON", "deeply nested", "decompression bomb", "body over the limit"):
        body, _, _ = MALFORMED[name]
        httpx.post(gateway.url + "/v1/chat/completions", content=body if isinstance(body, bytes) else json.dumps(body).encode(), timeout=60)
    completion = client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Still there?"}])
    assert completion.ecvl["route"] == "edge"
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'ecvl_router_requests_total{outcome="rejected",route="none",scenario="unknown"}' in metrics


LOOPBACK_URLS = [  # every spelling of this machine: refused by the default policy, and no packet can leave it
    ("http://127.0.0.1:{port}/v1/models", "image_url_refused"),
    ("http://127.254.0.1:{port}/", "image_url_refused"),
    ("http://localhost:{port}/v1/models", "image_url_refused"),
    ("http://[::1]:{port}/", "image_url_refused"),
    ("http://0.0.0.0:{port}/", "image_url_refused"),
    ("http://[::ffff:127.0.0.1]:{port}/", "image_url_refused"),
    ("http://2130706433:{port}/", "image_url_refused"),
    ("http://017700000001:{port}/", "image_url_refused"),
    ("http://0x7f.0.0.1:{port}/", "image_url_refused"),
    ("http://127.1:{port}/", "image_url_refused"),
    ("http://0177.0.0.1:{port}/", "invalid_image_url"),
]


@pytest.mark.parametrize(("template", "code"), LOOPBACK_URLS)
def test_image_urls_to_this_machine_are_refused(stack, template: str, code: str) -> None:
    url = template.format(port=stack["edge"].port)
    requests_before = sim_requests(stack["edge"])
    response = httpx.post(stack["gateway"].url + "/v1/chat/completions", json=_image(url), timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert sim_requests(stack["edge"]) == requests_before


@pytest.mark.parametrize(
    "address", ["10.0.0.8", "192.168.1.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1", "::ffff:10.0.0.1"]
)
def test_names_resolving_to_private_addresses_are_refused_before_any_connection(monkeypatch, address: str) -> None:
    """The resolver and the transport are stubs: the test itself opens no connection anywhere."""
    import asyncio
    import socket

    from ecvl_router.serve import images
    from ecvl_router.serve.config import ImagePolicy, Limits
    from ecvl_router.serve.errors import GatewayError

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, port))])
    sent = []

    async def fetch() -> None:
        async with images.ImageFetcher(ImagePolicy(), Limits()) as fetcher:
            fetcher._client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500)))
            await fetcher.fetch("http://images.example.test/cat.png", "image")

    with pytest.raises(GatewayError) as caught:
        asyncio.run(fetch())
    assert caught.value.code == "image_url_refused" and address in caught.value.message
    assert sent == []


def test_a_name_resolving_to_a_public_address_is_fetched_from_that_address(monkeypatch, items) -> None:
    import asyncio
    import socket

    from ecvl_router.serve import images
    from ecvl_router.serve.config import ImagePolicy, Limits

    public = "93.184.216.34"
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (public, port))])
    image_bytes = with_image(items)["path"].read_bytes()
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(image_bytes), headers={"Content-Type": "image/png"})

    async def fetch() -> images.CheckedImage:
        async with images.ImageFetcher(ImagePolicy(), Limits()) as fetcher:
            fetcher._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
            return await fetcher.fetch("http://images.example.test/cat.png", "image")

    assert asyncio.run(fetch()).data == image_bytes
    (request,) = sent  # connected by the checked address, with the name as Host
    assert request.url.host == public and request.headers["host"] == "images.example.test"


def test_image_urls_are_fetched_once_and_forwarded_as_data_uris(router, sims, items) -> None:
    from fastapi import FastAPI
    from fastapi.responses import Response

    item = with_image(items)
    image_bytes = item["path"].read_bytes()
    served = FastAPI()
    hits = []

    @served.get("/{name}")
    async def file(name: str) -> Response:
        hits.append(name)
        if name == "image.png":
            return Response(image_bytes, media_type="image/png")
        if name == "moved.png":
            return Response(status_code=302, headers={"Location": "/image.png"})
        if name == "huge.png":
            return Response(b"\x89PNG" + b"0" * (3 * 2**20), media_type="image/png")
        if name == "text.png":
            return Response(b"<html>not an image</html>", media_type="image/png")
        return Response(status_code=404)

    files = ThreadServer(served).start()
    try:
        with FakeServer() as cloud:
            with gateway_server(router, cloud.base_url, cloud.base_url, edge={"model": "good"}, cloud={"model": "good"},
                                images={"allow_private_networks": True}, limits={"max_image_bytes": 2**20}) as gateway:
                client = client_for(gateway)
                client.chat.completions.create(model="ecvl-router:speed", messages=image_message("What is it?", files.url + "/moved.png"))
                forwarded = cloud.state.requests[-1]["body"]["messages"][0]["content"][1]["image_url"]["url"]
                assert forwarded == data_uri(item["path"]) and hits == ["moved.png", "image.png"]
                for name, code in (("huge.png", "image_too_large"), ("text.png", "invalid_image"), ("missing.png", "image_fetch_failed")):
                    with pytest.raises(openai.BadRequestError) as caught:
                        client.chat.completions.create(model="ecvl-router:speed", messages=image_message("What is it?", f"{files.url}/{name}"))
                    assert caught.value.body["code"] == code
            with gateway_server(router, cloud.base_url, cloud.base_url, edge={"model": "good"}, cloud={"model": "good"},
                                images={"fetch_urls": False}) as gateway:
                with pytest.raises(openai.BadRequestError, match="data URI"):
                    client_for(gateway).chat.completions.create(model="ecvl-router", messages=image_message("What?", files.url + "/image.png"))
    finally:
        files.stop()


def test_redirects_to_private_addresses_are_refused(monkeypatch) -> None:
    """A first hop taken for public that redirects to a refused address is caught at the second hop (loopback only)."""
    import asyncio

    from ecvl_router.serve import images
    from ecvl_router.serve.config import ImagePolicy, Limits
    from ecvl_router.serve.errors import GatewayError
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/start.png")
    async def start() -> Response:
        return Response(status_code=307, headers={"Location": f"http://127.0.0.2:{server.port}/latest/meta-data/"})

    server = ThreadServer(app).start()
    monkeypatch.setattr(images, "is_public_address", lambda address: address == "127.0.0.1")

    async def fetch() -> None:
        async with images.ImageFetcher(ImagePolicy(), Limits()) as fetcher:
            await fetcher.fetch(server.url + "/start.png", "image")

    try:
        with pytest.raises(GatewayError, match="refused to fetch from '127.0.0.2'"):
            asyncio.run(fetch())
    finally:
        server.stop()


def test_public_address_check() -> None:
    from ecvl_router.serve.images import is_public_address

    assert is_public_address("93.184.216.34") and is_public_address("2606:4700::1111")
    for address in ("127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                    "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "224.0.0.1", "255.255.255.255"):
        assert not is_public_address(address), address


# ---------------------------------------------------------------------- operations
def test_health_readiness_and_metrics(stack) -> None:
    gateway = stack["gateway"]
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["backends"] == {"edge": "reachable", "cloud": "reachable"}
    client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "hi"}])
    metrics = httpx.get(gateway.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in ("ecvl_router_requests_total", "ecvl_router_decision_seconds_bucket", "ecvl_router_backend_seconds_bucket", "ecvl_router_edge_share"):
        assert name in text
    assert 'ecvl_router_requests_total{outcome="ok",route="edge",scenario="speed"}' in text


def test_metrics_count_batches_and_embedding_cache_hits(stack, items) -> None:
    """A repeated image is a cache hit, and /metrics reports hits, misses, the hit rate and batch sizes."""
    gateway, item = stack["gateway"], with_image(items)
    client = client_for(gateway)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="ecvl-router:quality", messages=image_message(item["question"], data_uri(item["path"])))
        assert int(raw.headers["x-ecvl-batch-size"]) >= 1
    text = httpx.get(gateway.url + "/metrics").text
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert values['ecvl_router_embedding_cache_hits_total{encoder="image"}'] >= 1
    assert values['ecvl_router_embedding_cache_hits_total{encoder="text"}'] >= 1
    assert 0 < values['ecvl_router_embedding_cache_hit_rate{encoder="image"}'] < 1
    assert values["ecvl_router_embedding_cache_bytes"] > 0
    assert values["ecvl_router_decision_batch_size_count"] >= 2
    assert values['ecvl_router_decision_batch_size_bucket{le="+Inf"}'] == values["ecvl_router_decision_batch_size_count"]


def test_decision_log_records_decisions_without_content(stack, items) -> None:
    item = with_image(items)
    client_for(stack["gateway"]).chat.completions.create(model="ecvl-router:quality", messages=image_message(item["question"], data_uri(item["path"])))
    text = stack["log"].read_text()
    record = json.loads(text.splitlines()[-1])
    assert {"time", "request_id", "scenario", "decision", "p", "tau", "route", "fallback", "router_ms", "backend_ms",
            "total_ms", "status", "attempts", "backend_errors"} <= set(record)
    assert record["scenario"] == "quality" and record["route"] == "cloud" and record["status"] == 200 and record["images"] == 1
    assert item["question"] not in text and "base64" not in text


def test_a_stream_the_client_abandons_is_logged_as_closed(router, sims, tmp_path: Path) -> None:
    import time

    log = tmp_path / "decisions.jsonl"
    slow = {role: ThreadServer(create_backend_sim_app(model, latency_scale=2.0)).start() for role, model in sims.items()}
    try:
        with gateway_server(router, slow["edge"].url + "/v1", slow["cloud"].url + "/v1", decision_log=log) as gateway:
            body = {"model": "ecvl-router:speed", "stream": True, "messages": [{"role": "user", "content": "Tell me a long story."}]}
            with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=30) as response:
                first = next(response.iter_lines())
            assert first.startswith("data:") and "ecvl" in first
            deadline = time.monotonic() + 10
            while not (log.exists() and log.read_text().endswith("\n")) and time.monotonic() < deadline:
                time.sleep(0.05)  # the log is opened with the gateway; the record lands when the stream's end is noticed
            record = json.loads(log.read_text())
            assert record["status"] == 499 and record["route"] == "edge" and record["stream"] is True
            assert 'outcome="client_closed"' in httpx.get(gateway.url + "/metrics").text
    finally:
        for server in slow.values():
            server.stop()
