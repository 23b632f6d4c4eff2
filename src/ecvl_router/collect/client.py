"""One OpenAI-compatible chat-completions backend, spoken to with httpx.

The client owns ``max_concurrency`` *lanes*, each an httpx client with one keep-alive connection; a call
takes a free lane, so a backend never sees more requests at once than its limit. One connection per lane
sidesteps the connection-pool bookkeeping of a shared httpx pool, whose cost grows with the number of open
connections (measured in benchmarks/collect_throughput.py; see docs/collect.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ecvl_router.collect.config import BackendConfig
from ecvl_router.openai_http.errors import CallError, excerpt, status_error, transport_error
from ecvl_router.openai_http.retry import with_retries
from ecvl_router.openai_http.sse import data_events

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Completion:
    """A model's answer with its timings and token counts (estimated from words when the server gave none)."""

    text: str
    latency_s: float
    ttft_s: float | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool


def estimate_tokens(text: str) -> int:
    """A word-based token estimate (about 4 tokens per 3 words), used when a server reports no usage."""
    return math.ceil(len(text.split()) * 4 / 3)


def _message_text(messages: Messages) -> str:
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [part.get("text", "") for part in content if part.get("type") == "text"]
    return "\n".join(parts)


def _count(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class ChatClient:
    """Calls one backend; use as ``async with ChatClient(config, key) as client``."""

    def __init__(self, config: BackendConfig, api_key: str | None) -> None:
        self.config = config
        self._api_key = api_key
        self._lanes: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._all_lanes: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> ChatClient:
        headers = {"Content-Type": "application/json", **self.config.headers}
        if self._api_key:
            scheme = "Bearer " if self.config.api_key_header.lower() == "authorization" else ""
            headers[self.config.api_key_header] = scheme + self._api_key
        ssl_context = httpx.create_ssl_context()
        for _ in range(self.config.max_concurrency):
            lane = httpx.AsyncClient(
                headers=headers,
                params=self.config.query,
                timeout=self.config.timeout_s,
                verify=ssl_context,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            self._all_lanes.append(lane)
            self._lanes.put_nowait(lane)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(lane.aclose() for lane in self._all_lanes), return_exceptions=True)
        self._all_lanes.clear()

    async def complete(self, messages: Messages) -> Completion:
        """One attempt at a chat completion; raises CallError on any failure."""
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, **self.config.params}
        if self.config.stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        url = f"{self.config.base_url}/chat/completions"
        lane = await self._lanes.get()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await (self._streamed(lane, url, body) if self.config.stream else self._whole(lane, url, body))
        except (TimeoutError, httpx.TimeoutException):
            raise CallError("timeout", f"no complete answer within {self.config.timeout_s:g} s", retryable=True) from None
        except httpx.TransportError as exc:
            raise transport_error(exc, self._api_key) from None
        finally:
            self._lanes.put_nowait(lane)

    async def complete_with_retries(self, messages: Messages) -> tuple[Completion, int]:
        """A chat completion under the backend's retry policy; returns it and the number of attempts."""
        return await with_retries(lambda: self.complete(messages), self.config.retry)

    async def _whole(self, lane: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        response = await lane.post(url, json=body)
        latency = time.perf_counter() - started
        if response.status_code >= 400:
            raise status_error(response, self._api_key)
        payload = self._json(response.content)
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices:
            raise CallError("empty_choices", f"the response has no choices: {excerpt(response.text, self._api_key)}")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise CallError("malformed_response", "the first choice has no text content")
        return self._completion(text, latency, None, payload.get("usage"), body["messages"])

    async def _streamed(self, lane: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        pieces: list[str] = []
        first_token: float | None = None
        usage: Any = None
        saw_choice = False
        async with lane.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                raise status_error(response, self._api_key)
            async for data in data_events(response.aiter_bytes()):
                chunk = self._json(data)
                if not isinstance(chunk, dict):
                    raise CallError("malformed_response", "a stream event is not a JSON object")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    saw_choice = True
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content:
                        if first_token is None:
                            first_token = time.perf_counter() - started
                        pieces.append(content)
        if not saw_choice:
            raise CallError("empty_choices", "the stream carried no choices")
        return self._completion("".join(pieces), time.perf_counter() - started, first_token, usage, body["messages"])

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = excerpt(raw.decode("utf-8", errors="replace"), self._api_key)
            raise CallError("malformed_response", f"not valid JSON: {text!r}") from None

    @staticmethod
    def _completion(text: str, latency: float, ttft: float | None, usage: Any, messages: Messages) -> Completion:
        input_tokens, output_tokens = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
        return Completion(
            text=text,
            latency_s=latency,
            ttft_s=ttft,
            input_tokens=input_tokens if input_tokens is not None else estimate_tokens(_message_text(messages)),
            output_tokens=output_tokens if output_tokens is not None else estimate_tokens(text),
            tokens_estimated=input_tokens is None or output_tokens is None,
        )
