"""End to end with separate processes: two `ecvl-router backend-sim`, one `ecvl-router serve` with a bundle
trained on the real default encoders (MiniLM-L6, MobileNetV2), and the official `openai` client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import yaml

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import generate_demo
from ecvl_router.serve import example_config
from tests.serve_support import CLOUD, EDGE, SCENARIO_FILE, Process, data_uri, free_port, image_message, train_bundle

pytestmark = pytest.mark.slow

EDGE_FIRST = {"name": "edge-first", "alpha": 0.2, "beta": 1.0, "gamma": 0.0}
"""A scenario that values edge usage far above quality: its tau sends (almost) every query to the edge."""
GATEWAY_KEY = "gateway-test-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    root = tmp_path_factory.mktemp("processes")
    data = generate_demo(root / "data", n_items=120, seed=5).out_dir
    monkeypatch_module.setitem(SCENARIO_FILE, "scenarios", [*SCENARIO_FILE["scenarios"], EDGE_FIRST])
    bundle = train_bundle(data, root / "run", root / "cache", encoders=None, epochs=3)
    ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
    sims = {
        role: Process(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]), "--latency-scale", "0.02"],
                      f"http://127.0.0.1:{ports[role]}/healthz", root / f"{role}.log")
        for role, model in (("edge", EDGE), ("cloud", CLOUD))
    }
    config = yaml.safe_load(example_config())
    config.update(bundle=str(bundle), port=ports["gateway"], api_keys_env="TEST_GATEWAY_KEYS", decision_log="decisions.jsonl")
    config["edge"]["base_url"] = f"http://127.0.0.1:{ports['edge']}/v1"
    config["cloud"]["base_url"] = f"http://127.0.0.1:{ports['cloud']}/v1"
    (root / "gateway.yaml").write_text(yaml.safe_dump(config))
    gateway = Process(["serve", "--config", str(root / "gateway.yaml")], f"http://127.0.0.1:{ports['gateway']}/healthz",
                      root / "gateway.log", env={"TEST_GATEWAY_KEYS": GATEWAY_KEY})
    try:
        for process in (*sims.values(), gateway):
            process.wait_ready()
        yield {"root": root, "data": data, "sims": sims, "gateway": gateway, "url": f"http://127.0.0.1:{ports['gateway']}",
               "sim_urls": {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}}
    finally:
        for process in (gateway, *sims.values()):
            process.kill()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def _client(stack, key: str = GATEWAY_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack["url"] + "/v1", api_key=key, max_retries=0, timeout=120)


def _sim_requests(stack, role: str) -> int:
    return httpx.get(stack["sim_urls"][role] + "/sim/stats").json()["requests"]


def test_requests_are_routed_and_answered_by_the_chosen_model(stack) -> None:
    rsd = load_rsd(stack["data"])
    answers = rsd.responses.set_index(["item_id", "model"])["response"]
    client = _client(stack)
    for item in rsd.items.head(6).to_dict("records"):
        image = rsd.image_path(item["image"])
        messages = image_message(item["question"], data_uri(image)) if image else [{"role": "user", "content": item["question"]}]
        for scenario in ("quality", "speed", "privacy", "edge-first"):
            completion = client.chat.completions.create(model=f"ecvl-router:{scenario}", messages=messages)
            ecvl = completion.ecvl
            assert ecvl["scenario"] == scenario and ecvl["fallback"] is False and ecvl["route"] == ecvl["decision"]
            assert (ecvl["p"] >= ecvl["tau"]) == (ecvl["route"] == "edge")
            model = EDGE if ecvl["route"] == "edge" else CLOUD
            assert completion.model == model
            assert completion.choices[0].message.content == answers[(item["item_id"], model)]  # byte for byte
            if scenario in ("privacy", "edge-first"):
                assert ecvl["route"] == "edge"


def test_text_only_and_streaming(stack) -> None:
    client = _client(stack)
    text = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert text.ecvl["router_ms"] > 0 and text.choices[0].message.content
    chunks = list(client.chat.completions.create(model="ecvl-router:edge-first", messages=[{"role": "user", "content": "Describe a sunset."}], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].ecvl["route"] == "edge" and streamed.startswith("(simulated")


def test_keys_bad_input_and_ssrf(stack) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(stack, "wrong").chat.completions.create(model="ecvl-router", messages=[{"role": "user", "content": "hi"}])
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    for body in (b"not json", json.dumps({"model": "ecvl-router", "messages": []}).encode(),
                 json.dumps({"model": "ecvl-router:nope", "messages": [{"role": "user", "content": "hi"}]}).encode()):
        response = httpx.post(stack["url"] + "/v1/chat/completions", content=body, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["message"]
    ssrf = {"model": "ecvl-router", "messages": image_message("What?", stack["sim_urls"]["edge"] + "/v1/models")}
    response = httpx.post(stack["url"] + "/v1/chat/completions", json=ssrf, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "image_url_refused"
    assert httpx.get(stack["url"] + "/readyz").json()["ready"] is True


def test_killed_edge_falls_back_to_cloud_and_privacy_never_leaves_the_edge(stack) -> None:
    client = _client(stack)
    cloud_before = _sim_requests(stack, "cloud")
    for _ in range(3):
        assert client.chat.completions.create(model="ecvl-router:privacy", messages=[{"role": "user", "content": "My notes."}]).ecvl["route"] == "edge"
    assert _sim_requests(stack, "cloud") == cloud_before
    stack["sims"]["edge"].kill()
    fallback = client.chat.completions.create(model="ecvl-router:edge-first", messages=[{"role": "user", "content": "Count the dots."}])
    assert fallback.ecvl["decision"] == "edge" and fallback.ecvl["route"] == "cloud" and fallback.ecvl["fallback"] is True
    assert fallback.model == CLOUD and _sim_requests(stack, "cloud") == cloud_before + 1
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="ecvl-router:privacy", messages=[{"role": "user", "content": "My notes."}])
    assert caught.value.status_code == 503 and "does not allow the cloud" in caught.value.message
    assert _sim_requests(stack, "cloud") == cloud_before + 1
    assert httpx.get(stack["url"] + "/readyz").status_code == 503 and httpx.get(stack["url"] + "/healthz").status_code == 200
    metrics = httpx.get(stack["url"] + "/metrics").text
    assert 'ecvl_router_fallbacks_total{from_route="edge",reason="connection",to_route="cloud"} 1.0' in metrics
    records = [json.loads(line) for line in (stack["root"] / "decisions.jsonl").read_text().splitlines()]
    assert records[-1]["status"] == 503 and records[-1]["route"] is None and records[-2]["fallback"] is True
    assert GATEWAY_KEY not in (stack["root"] / "decisions.jsonl").read_text()
