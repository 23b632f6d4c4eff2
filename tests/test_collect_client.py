"""The chat client against a real local OpenAI-compatible server: usage, streaming, retries, failures."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from ecvl_router.collect.client import ChatClient, estimate_tokens
from ecvl_router.collect.config import BackendConfig
from ecvl_router.collect.images import image_data_uri
from ecvl_router.openai_http.errors import CallError
from tests.fake_openai import FakeServer, answer_for

SECRET = "sk-test-DO-NOT-LEAK-4242"


@pytest.fixture(scope="module")
def server():
    with FakeServer() as running:
        yield running


def backend(server: FakeServer, model: str, **settings) -> BackendConfig:
    retry = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, **settings.pop("retry", {})}
    return BackendConfig(name=model, base_url=server.base_url, model=model, retry=retry, **settings)


def ask(config: BackendConfig, question: str, key: str | None = SECRET):
    async def call():
        async with ChatClient(config, key) as client:
            return await client.complete_with_retries([{"role": "user", "content": question}])

    return asyncio.run(call())


def test_answer_latency_and_usage(server: FakeServer) -> None:
    completion, attempts = ask(backend(server, "good"), "What colour is the sky?")
    assert completion.text == answer_for("good", "What colour is the sky?")
    assert (completion.input_tokens, completion.output_tokens, completion.tokens_estimated) == (11, len(completion.text.split()), False)
    assert completion.latency_s > 0 and completion.ttft_s is None and attempts == 1
    request = server.state.requests[-1]
    assert request["authorization"] == f"Bearer {SECRET}"
    assert request["body"]["temperature"] == 0 and request["body"]["max_tokens"] == 1024


def test_missing_usage_is_estimated_and_flagged(server: FakeServer) -> None:
    completion, _ = ask(backend(server, "nousage"), "How many cats are in the picture?")
    assert completion.tokens_estimated
    assert completion.output_tokens == estimate_tokens(completion.text) > 0
    assert completion.input_tokens == estimate_tokens("How many cats are in the picture?")


def test_streaming_records_time_to_first_token(server: FakeServer) -> None:
    server.state.first_token_delay_s = 0.1
    completion, _ = ask(backend(server, "good", stream=True), "Stream this answer please")
    assert completion.text == answer_for("good", "Stream this answer please")
    assert 0.1 <= completion.ttft_s <= completion.latency_s
    assert completion.output_tokens == len(completion.text.split()) and not completion.tokens_estimated
    assert server.state.requests[-1]["body"]["stream"] is True


def test_429_and_500_are_retried_honouring_retry_after(server: FakeServer) -> None:
    completion, attempts = ask(backend(server, "flaky"), "flaky question one")
    assert attempts == 3 and completion.text == answer_for("flaky", "flaky question one")


def test_exhausted_retries_report_kind_and_attempts(server: FakeServer) -> None:
    with pytest.raises(CallError) as caught:
        ask(backend(server, "always429", retry={"max_attempts": 3}), "never answered")
    assert caught.value.kind == "rate_limited" and caught.value.attempts == 3 and caught.value.retryable


def test_retry_after_beyond_the_limit_fails_at_once(server: FakeServer) -> None:
    started = time.monotonic()
    with pytest.raises(CallError) as caught:
        ask(backend(server, "retry-later", retry={"max_retry_after_s": 5}), "quota exhausted")
    assert time.monotonic() - started < 2
    assert caught.value.attempts == 1 and "3600" in caught.value.message


@pytest.mark.parametrize("question, kind", [("[malformed] body", "malformed_response"), ("[empty] choices", "empty_choices")])
def test_malformed_and_empty_answers_fail_without_retry(server: FakeServer, question: str, kind: str) -> None:
    with pytest.raises(CallError) as caught:
        ask(backend(server, "broken"), question)
    assert caught.value.kind == kind and caught.value.attempts == 1


def test_timeouts_are_retried_then_reported(server: FakeServer) -> None:
    server.state.delay_s = 0.5
    with pytest.raises(CallError) as caught:
        ask(backend(server, "slow", timeout_s=0.1, retry={"max_attempts": 2}), "too slow")
    assert caught.value.kind == "timeout" and caught.value.attempts == 2


def test_connection_refused_is_a_connection_error() -> None:
    config = BackendConfig(name="x", base_url="http://127.0.0.1:9/v1", model="x", retry={"max_attempts": 2, "backoff_base_s": 0.01})
    with pytest.raises(CallError) as caught:
        ask(config, "anyone there?")
    assert caught.value.kind == "connection" and caught.value.attempts == 2


def test_the_key_never_appears_in_an_error(server: FakeServer) -> None:
    with pytest.raises(CallError) as caught:
        ask(backend(server, "echo-auth"), "who am I?")
    assert caught.value.kind == "auth"
    assert server.state.requests[-1]["authorization"] == f"Bearer {SECRET}"  # the server did get it
    assert SECRET not in caught.value.message and "***" in caught.value.message


def test_custom_key_header_and_query(server: FakeServer) -> None:
    config = backend(server, "good", api_key_header="api-key", query={"api-version": "2024-10-21"}, headers={"X-Team": "vision"})
    ask(config, "azure style")
    assert server.state.requests[-1]["authorization"] is None


def test_concurrency_never_exceeds_the_limit(server: FakeServer) -> None:
    server.state.delay_s = 0.05
    deadline = time.monotonic() + 5
    while server.state.in_flight and time.monotonic() < deadline:  # requests of earlier tests still sleeping
        time.sleep(0.05)
    server.state.peak_in_flight = 0

    async def call_many() -> None:
        async with ChatClient(backend(server, "slow", max_concurrency=3), None) as client:
            await asyncio.gather(*(client.complete([{"role": "user", "content": f"concurrent {i}"}]) for i in range(12)))

    asyncio.run(call_many())
    assert server.state.peak_in_flight == 3


def test_images_are_downscaled_data_uris(tmp_path: Path) -> None:
    big, small = tmp_path / "big.png", tmp_path / "small.jpg"
    Image.new("RGB", (2000, 500), (10, 200, 30)).save(big)
    Image.new("RGB", (64, 48), (200, 10, 10)).save(small, quality=95)
    uri = image_data_uri(big, 512)
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as decoded:
        assert decoded.size == (512, 128)
    untouched = image_data_uri(small, 512)
    assert base64.b64decode(untouched.split(",", 1)[1]) == small.read_bytes()
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (900, 900), (0, 0, 0, 0)).save(rgba)
    assert image_data_uri(rgba, 300).startswith("data:image/png;base64,")
