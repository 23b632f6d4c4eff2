"""The in-process clients: decide(), and chat.completions.create() sync and async against backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from PIL import Image

from ecvl_router import AsyncRouterClient, RouterClient
from ecvl_router.data import load_rsd
from ecvl_router.serve import Decision, example_config
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from tests.serve_support import CLOUD, EDGE, ThreadServer, data_uri, demo_data, image_message, tiny_bundle  # noqa: F401


@pytest.fixture(scope="module")
def backends(demo_data: Path):
    servers = {
        role: ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(demo_data, model), latency_scale=0)).start()
        for role, model in (("edge", EDGE), ("cloud", CLOUD))
    }
    yield {role: {"base_url": server.url + "/v1"} for role, server in servers.items()}
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def item(demo_data: Path) -> dict:
    rsd = load_rsd(demo_data)
    row = next(r for r in rsd.items.to_dict("records") if r["image"] is not None)
    answers = rsd.responses.set_index(["item_id", "model"])["response"]
    return {**row, "path": rsd.image_path(row["image"]), "edge": answers[(row["item_id"], EDGE)], "cloud": answers[(row["item_id"], CLOUD)]}


@pytest.fixture(scope="module")
def client(tiny_bundle: Path, backends):
    with RouterClient(tiny_bundle, edge=backends["edge"], cloud=backends["cloud"], default_scenario="speed") as routed:
        yield routed


def test_decide_routes_by_the_scenario_threshold(client: RouterClient, item: dict) -> None:
    image = Image.open(item["path"])
    for scenario, route in (("quality", "cloud"), ("speed", "edge"), ("privacy", "edge")):
        for source in (item["path"], item["path"].read_bytes(), image):
            decision = client.decide(item["question"], image=source, scenario=scenario)
            assert isinstance(decision, Decision) and decision.route == route and decision.scenario == scenario
            assert (decision.p >= decision.tau) == (route == "edge") and decision.router_ms > 0
    by_path = client.decide(item["question"], image=item["path"], scenario="speed")
    assert client.decide(item["question"], image=item["path"].read_bytes(), scenario="speed").p == pytest.approx(by_path.p, abs=1e-6)
    assert client.decide(item["question"]).scenario == "speed"  # the default scenario
    assert client.scenarios == ["quality", "speed", "privacy"]
    with pytest.raises(ValueError, match="unknown scenario 'fast'; known scenarios: quality, speed, privacy"):
        client.decide("hi", scenario="fast")


def test_sync_create_returns_openai_types_with_the_decision(client: RouterClient, item: dict) -> None:
    messages = image_message(item["question"], data_uri(item["path"]))
    completion = client.chat.completions.create(model="ecvl-router:quality", messages=messages)
    assert isinstance(completion, ChatCompletion) and completion.model == CLOUD
    assert completion.choices[0].message.content == item["cloud"]
    assert completion.ecvl["route"] == "cloud" and completion.ecvl["scenario"] == "quality"
    assert messages[0]["content"][1]["image_url"]["url"].startswith("data:image/")  # the caller's messages are untouched
    default = client.chat.completions.create(model="ecvl-router", messages=[{"role": "user", "content": item["question"]}])
    assert default.ecvl["scenario"] == "speed" and default.choices[0].message.content == item["edge"]
    by_header = client.chat.completions.create(model="ecvl-router", messages=messages, extra_headers={"X-ECVL-Scenario": "quality"})
    assert by_header.ecvl["scenario"] == "quality"


def test_sync_stream_and_follow_up_with_openai_message_objects(client: RouterClient, item: dict) -> None:
    chunks = list(client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": item["question"]}], stream=True))
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert chunks[0].ecvl["route"] == "edge"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == item["edge"]
    first = client.chat.completions.create(model="ecvl-router:quality", messages=[{"role": "user", "content": item["question"]}])
    history = [{"role": "user", "content": item["question"]}, first.choices[0].message, {"role": "user", "content": "Sure?"}]
    follow_up = client.chat.completions.create(model="ecvl-router:speed", messages=history)
    assert follow_up.ecvl["route"] == "cloud" and follow_up.ecvl["sticky"] is True  # found by the hash of its history
    session = {"X-ECVL-Session": "client-conversation-1"}
    client.chat.completions.create(model="ecvl-router:quality", messages=[{"role": "user", "content": "Hello"}], extra_headers=session)
    named = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Again"}], extra_headers=session)
    assert named.ecvl["route"] == "cloud" and named.ecvl["sticky"] is True  # found by its session key


def test_errors_are_the_openai_exceptions(client: RouterClient) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="ecvl-router:fast", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 400 and "known scenarios" in caught.value.message
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="ecvl-router", messages=[{"role": "robot", "content": "hi"}])


def test_privacy_failure_is_a_503_and_the_cloud_is_never_called(tiny_bundle: Path, backends) -> None:
    dead_edge = {"base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 0.5}
    with RouterClient(tiny_bundle, edge=dead_edge, cloud=backends["cloud"]) as routed:
        with pytest.raises(openai.InternalServerError) as caught:
            routed.chat.completions.create(model="ecvl-router:privacy", messages=[{"role": "user", "content": "my diary"}])
        assert caught.value.status_code == 503
        fallback = routed.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "my diary"}])
        assert fallback.ecvl["fallback"] is True and fallback.model == CLOUD


def test_async_client(tiny_bundle: Path, backends, item: dict) -> None:
    async def main() -> None:
        async with AsyncRouterClient(tiny_bundle, edge=backends["edge"], cloud=backends["cloud"]) as routed:
            decision = await routed.decide(item["question"], image=item["path"], scenario="quality")
            assert decision.route == "cloud"
            messages = image_message(item["question"], data_uri(item["path"]))
            completion, stream = await asyncio.gather(
                routed.chat.completions.create(model="ecvl-router:speed", messages=messages),
                routed.chat.completions.create(model="ecvl-router:quality", messages=messages, stream=True),
            )
            assert completion.choices[0].message.content == item["edge"] and completion.ecvl["route"] == "edge"
            chunks = [chunk async for chunk in stream]
            assert chunks[0].ecvl["route"] == "cloud"
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == item["cloud"]

    asyncio.run(main())


def test_from_config_and_decide_only_clients(tiny_bundle: Path, backends, tmp_path: Path) -> None:
    document = yaml.safe_load(example_config())
    document.update(bundle=str(tiny_bundle), default_scenario="privacy", edge=backends["edge"], cloud=backends["cloud"], decision_log="log.jsonl")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    with RouterClient.from_config(path) as configured:
        completion = configured.chat.completions.create(model="ecvl-router", messages=[{"role": "user", "content": "hello"}])
        assert completion.ecvl["scenario"] == "privacy" and completion.model == EDGE
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 1
    decide_only = RouterClient(tiny_bundle)
    assert decide_only.decide("hello", scenario="quality").route == "cloud"
    with pytest.raises(RuntimeError, match="no backends"):
        decide_only.chat.completions.create(model="ecvl-router", messages=[{"role": "user", "content": "hello"}])
    with pytest.raises(ValueError, match="both edge and cloud"):
        RouterClient(tiny_bundle, edge=backends["edge"])
