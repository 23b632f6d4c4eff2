"""Capture, shadow answers and feedback of the gateway over HTTP on 127.0.0.1, with the official ``openai`` client.

The gateway and simulated backends (``backend-sim``) run in background threads of this process; the capture
store is read back from its SQLite file. tests/test_capture_processes.py kills and shares gateway processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ecvl_router.capture_store import CaptureStore
from tests.serve_support import CLOUD, EDGE, ThreadServer, data_uri, demo_data, free_port, image_message, tiny_bundle  # noqa: F401
from tests.test_serve_gateway import backend_sims, client_for, gateway_server, items, router, sims, with_image  # noqa: F401

KEY = "client-key-0123"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds (a wait for background work, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def metric(gateway: ThreadServer, name: str) -> float:
    """The sum of a metric's samples whose name and labels start with ``name``."""
    lines = httpx.get(gateway.url + "/metrics", timeout=30).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def answers(store: CaptureStore) -> dict[tuple[str, str], dict]:
    return {(row["request_id"], row["role"]): row for row in store.rows("answers")}


@pytest.fixture
def capture_dir(tmp_path: Path) -> Path:
    return tmp_path / "capture"


@contextmanager
def capturing(router, sims, capture_dir: Path, **capture) -> Iterator[tuple[ThreadServer, CaptureStore]]:
    with backend_sims(sims) as servers:
        settings = {"dir": capture_dir, "sample": 1.0, **capture}
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", capture=settings) as gateway:
            yield gateway, CaptureStore(capture_dir, create=False)


# ---------------------------------------------------------------------- capture and shadow
def test_a_captured_request_stores_query_decision_served_and_shadow_answers(router, sims, items, capture_dir: Path) -> None:
    item = with_image(items)
    with capturing(router, sims, capture_dir) as (gateway, store):
        raw = client_for(gateway).chat.completions.with_raw_response.create(
            model="ecvl-router:quality", messages=image_message(item["question"], data_uri(item["path"]))
        )
        completion = raw.parse()
        request_id = completion.ecvl["request_id"]
        assert raw.headers["x-ecvl-capture"] == "sampled" and raw.headers["x-request-id"] == request_id
        assert completion.choices[0].message.content == item["cloud_answer"]  # byte for byte the backend's
        wait_until(lambda: (request_id, "shadow") in answers(store), "the shadow answer")

        (capture,) = store.rows("captures")
        assert capture["request_id"] == request_id and capture["scenario"] == "quality" and capture["question"] == item["question"]
        assert capture["decision"] == "cloud" and capture["p"] == pytest.approx(completion.ecvl["p"]) and capture["tau"] == 1.0
        image_bytes = item["path"].read_bytes()
        assert capture["image_sha256"] == hashlib.sha256(image_bytes).hexdigest() and capture["stream"] == 0
        assert store.image_path(capture["image_sha256"], capture["image_format"]).read_bytes() == image_bytes
        served, shadow = answers(store)[(request_id, "served")], answers(store)[(request_id, "shadow")]
        assert (served["route"], served["model"], served["text"]) == ("cloud", CLOUD, item["cloud_answer"])  # no marker
        assert (shadow["route"], shadow["model"], shadow["text"]) == ("edge", EDGE, item["edge_answer"])
        assert served["ok"] == shadow["ok"] == 1 and served["latency_s"] > 0 and shadow["latency_s"] > 0
        assert served["output_tokens"] > 0 and shadow["input_tokens"] > 0  # the simulator's usage

        # the same image again is stored once
        client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=image_message(item["question"], data_uri(item["path"])))
        wait_until(lambda: len(store.rows("answers")) == 4, "the second capture's answers")
        assert len(list(store.images_dir.rglob("*.*"))) == 1
        assert metric(gateway, 'ecvl_router_captures_total{scenario="quality"}') == 1
        assert metric(gateway, 'ecvl_router_shadow_calls_total{outcome="ok",route="edge"}') == 1
    assert store.integrity() == "ok"


def test_a_streamed_answer_is_captured_after_the_stream_ends(router, sims, items, capture_dir: Path) -> None:
    item = items[1]
    with capturing(router, sims, capture_dir, shadow=False) as (gateway, store):
        stream = client_for(gateway).chat.completions.create(
            model="ecvl-router:speed", messages=[{"role": "user", "content": item["question"]}], stream=True
        )
        chunks = list(stream)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert text == item["edge_answer"]
        request_id = chunks[0].ecvl["request_id"]
        wait_until(lambda: store.rows("answers"), "the streamed capture")
        (served,) = store.rows("answers")
        assert served["request_id"] == request_id and served["text"] == item["edge_answer"] and served["role"] == "served"
        assert served["output_tokens"] is None  # the client asked for no usage, so the stream carried none
        assert store.rows("captures")[0]["stream"] == 1 and store.rows("captures")[0]["image_sha256"] is None


def test_opted_out_requests_and_cloudless_scenarios_are_neither_captured_nor_shadowed(router, sims, items, capture_dir: Path) -> None:
    item = with_image(items)
    with capturing(router, sims, capture_dir) as (gateway, store):
        client = client_for(gateway)
        opted_out = client.chat.completions.with_raw_response.create(
            model="ecvl-router:speed", messages=image_message(item["question"], data_uri(item["path"])),
            extra_headers={"X-ECVL-Capture": "off"},
        )
        private = client.chat.completions.with_raw_response.create(
            model="ecvl-router:privacy", messages=image_message(item["question"], data_uri(item["path"]))
        )
        assert opted_out.parse().ecvl["route"] == "edge" and private.parse().ecvl["route"] == "edge"
        assert "x-ecvl-capture" not in opted_out.headers and "x-ecvl-capture" not in private.headers
        captured = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": item["question"]}])
        wait_until(lambda: len(store.rows("answers")) == 2, "the one capture and its shadow")
        assert [row["request_id"] for row in store.rows("captures")] == [captured.ecvl["request_id"]]
        assert metric(gateway, 'ecvl_router_capture_skipped_total{reason="opted_out"}') == 1
        assert metric(gateway, 'ecvl_router_capture_skipped_total{reason="cloud_not_allowed"}') == 1
        assert metric(gateway, "ecvl_router_shadow_calls_total") == 1
        with pytest.raises(openai.BadRequestError, match="X-ECVL-Capture"):
            client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"X-ECVL-Capture": "no"})
        assert len(store.rows("captures")) == 1


class _HeldBackend:
    """An OpenAI-compatible backend whose answers wait until ``release()``; counts the requests it got."""

    def __init__(self) -> None:
        self.received = 0
        self._released = threading.Event()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.received += 1
            while not self._released.is_set():
                await asyncio.sleep(0.01)
            message = {"role": "assistant", "content": "held answer"}
            return JSONResponse({"id": "held", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

        self.server = ThreadServer(app)

    def release(self) -> None:
        self._released.set()


def test_a_full_shadow_queue_drops_and_counts_without_holding_up_clients(router, sims, items, capture_dir: Path) -> None:
    held = _HeldBackend()
    held.server.start()
    try:
        with backend_sims(sims) as servers:
            capture = {"dir": capture_dir, "sample": 1.0, "shadow_queue": 1, "shadow_concurrency": 1}
            with gateway_server(router, servers["edge"].url + "/v1", held.server.url + "/v1", capture=capture) as gateway:
                store = CaptureStore(capture_dir, create=False)
                client = client_for(gateway)
                ask = lambda item: client.chat.completions.create(  # noqa: E731
                    model="ecvl-router:speed", messages=[{"role": "user", "content": item["question"]}])
                first = ask(items[0])
                wait_until(lambda: held.received == 1, "the first shadow call to reach the held cloud")
                later = [ask(item) for item in items[1:4]]  # answered while the shadow call is held: one waits, two are dropped
                assert all(answer.ecvl["route"] == "edge" for answer in [first, *later])
                wait_until(lambda: len(store.rows("captures")) == 4, "the four captures")
                assert metric(gateway, "ecvl_router_shadow_dropped_total") == 2
                assert metric(gateway, "ecvl_router_shadow_queue") == 1
                held.release()
                wait_until(lambda: len([r for r in store.rows("answers") if r["role"] == "shadow"]) == 2, "the two shadow answers")
                shadowed = {row["request_id"] for row in store.rows("answers") if row["role"] == "shadow"}
                assert shadowed == {first.ecvl["request_id"], later[0].ecvl["request_id"]}
                assert held.received == 2
    finally:
        held.server.stop()


def test_a_failing_shadow_backend_is_recorded_and_never_fails_the_client(router, sims, items, capture_dir: Path) -> None:
    with backend_sims(sims) as servers:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        capture = {"dir": capture_dir, "sample": 1.0}
        with gateway_server(router, servers["edge"].url + "/v1", dead, capture=capture,
                            cloud={"retry": {"max_attempts": 1}}) as gateway:
            store = CaptureStore(capture_dir, create=False)
            answer = client_for(gateway).chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": items[0]["question"]}])
            assert answer.choices[0].message.content == items[0]["edge_answer"]
            wait_until(lambda: len(store.rows("answers")) == 2, "the failed shadow record")
            shadow = answers(store)[(answer.ecvl["request_id"], "shadow")]
            assert shadow["ok"] == 0 and shadow["error_kind"] == "connection" and shadow["text"] is None
            assert metric(gateway, 'ecvl_router_shadow_calls_total{outcome="failed",route="cloud"}') == 1


def test_sampling_zero_captures_nothing(router, sims, items, capture_dir: Path) -> None:
    with capturing(router, sims, capture_dir, sample=0.0) as (gateway, store):
        raw = client_for(gateway).chat.completions.with_raw_response.create(
            model="ecvl-router:speed", messages=[{"role": "user", "content": items[0]["question"]}])
        assert "x-ecvl-capture" not in raw.headers
    assert store.rows("captures") == [] and store.integrity() == "ok"


# ---------------------------------------------------------------------- feedback
def post_feedback(gateway: ThreadServer, body: object, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gateway.url + "/v1/feedback", json=body, headers=headers, timeout=30)


def test_feedback_is_stored_next_to_its_capture(router, sims, items, capture_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAPTURE_KEYS", KEY)
    with backend_sims(sims) as servers:
        capture = {"dir": capture_dir, "sample": 1.0, "shadow": False}
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", capture=capture,
                            api_keys_env="CAPTURE_KEYS") as gateway:
            answer = client_for(gateway, KEY).chat.completions.create(
                model="ecvl-router:speed", messages=[{"role": "user", "content": items[0]["question"]}])
            request_id = answer.ecvl["request_id"]
            stored = post_feedback(gateway, {"request_id": request_id, "score": 7, "comment": "good enough"})  # at once
            assert stored.status_code == 200, stored.text
            assert stored.json() == {"object": "feedback", "request_id": request_id, "score": 7.0, "comment": "good enough"}
            assert post_feedback(gateway, {"request_id": request_id, "score": 8.5}).status_code == 200  # replaces the first

            unknown = post_feedback(gateway, {"request_id": "0" * 32, "score": 5})
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "request_not_found"
            for body, param in (({"request_id": request_id}, "score"), ({"request_id": request_id, "score": 11}, "score"),
                                ({"request_id": request_id, "score": True}, "score"), ({"score": 5}, "request_id"),
                                ({"request_id": request_id, "score": 5, "comment": 3}, "comment"),
                                ({"request_id": request_id, "score": 5, "rating": 5}, "rating")):
                bad = post_feedback(gateway, body)
                assert bad.status_code == 400 and bad.json()["error"]["param"] == param, (body, bad.text)
            not_json = httpx.post(gateway.url + "/v1/feedback", content=b"{score", headers={"Authorization": f"Bearer {KEY}"})
            assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
            assert post_feedback(gateway, {"request_id": request_id, "score": 1}, key=None).status_code == 401
            wrong = post_feedback(gateway, {"request_id": request_id, "score": 1}, key="wrong")
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    (row,) = CaptureStore(capture_dir, create=False).rows("feedback")
    assert (row["request_id"], row["score"], row["comment"]) == (request_id, 8.5, None)


def test_feedback_needs_a_capture_section(router, sims) -> None:
    with backend_sims(sims) as servers, gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
        response = post_feedback(gateway, {"request_id": "x", "score": 5}, key=None)
    assert response.status_code == 404 and response.json()["error"]["code"] == "feedback_disabled"
