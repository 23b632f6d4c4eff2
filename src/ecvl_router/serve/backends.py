"""The two upstream backends: chat requests forwarded over httpx, with the retry policy of ``openai_http.retry``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from ecvl_router.openai_http.client_pool import ClientPool
from ecvl_router.openai_http.errors import CallError, redact, response_excerpt, status_error, transport_error
from ecvl_router.openai_http.retry import with_retries
from ecvl_router.serve.config import BackendSpec
from ecvl_router.serve.routing import Route


class Backend:
    """One OpenAI-compatible endpoint; the client's ``model`` is replaced by this backend's model id.

    The API key goes into the request header only: error messages replace it with ``***``.
    """

    def __init__(self, role: Route, spec: BackendSpec, model: str, api_key: str | None) -> None:
        self.role = role
        self.spec = spec
        self.model = model
        self._api_key = api_key
        headers = {"Content-Type": "application/json", **spec.headers}
        if api_key:
            headers[spec.api_key_header] = ("Bearer " if spec.api_key_header.lower() == "authorization" else "") + api_key
        self._clients = ClientPool(
            spec.max_connections,
            base_url=spec.base_url,
            headers=headers,
            timeout=httpx.Timeout(spec.timeout_s, connect=spec.connect_timeout_s),
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._clients.aclose()

    def payload(self, body: dict[str, Any]) -> bytes:
        """The request body for this backend."""
        return json.dumps({**body, "model": self.model}, ensure_ascii=False).encode()

    async def complete(self, payload: bytes) -> tuple[dict[str, Any], int]:
        """A whole chat completion under the retry policy: (the backend's JSON body, attempts)."""
        return await with_retries(lambda: self._complete_once(payload), self.spec.retry)

    async def open_stream(self, payload: bytes) -> tuple[httpx.Response, int]:
        """A streamed completion whose status was 200, under the retry policy; the caller closes the response."""
        return await with_retries(lambda: self._open_stream_once(payload), self.spec.retry)

    async def reachable(self) -> str | None:
        """None when the backend answers HTTP at all (any status), else why not."""
        try:
            await self._clients.next().get("/models", timeout=self.spec.connect_timeout_s)
        except httpx.HTTPError as exc:
            return redact(f"{type(exc).__name__}: {exc}".rstrip(": "), self._api_key)
        return None

    async def _complete_once(self, payload: bytes) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.spec.timeout_s):
                response = await self._clients.next().post("/chat/completions", content=payload)
        except (TimeoutError, httpx.TimeoutException):
            raise CallError("timeout", f"no answer within {self.spec.timeout_s:g} s", retryable=True) from None
        except httpx.TransportError as exc:
            raise transport_error(exc, self._api_key) from None
        if response.status_code >= 400:
            raise status_error(response, self._api_key)
        try:
            document = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CallError("malformed_response", f"not JSON: {response_excerpt(response, self._api_key)!r}", status=response.status_code) from None
        if not isinstance(document, dict) or not isinstance(document.get("choices"), list):
            raise CallError("malformed_response", f"not a chat completion: {response_excerpt(response, self._api_key)!r}", status=response.status_code)
        return document

    async def _open_stream_once(self, payload: bytes) -> httpx.Response:
        client = self._clients.next()
        request = client.build_request("POST", "/chat/completions", content=payload)
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise CallError("timeout", f"no answer within {self.spec.timeout_s:g} s", retryable=True) from None
        except httpx.TransportError as exc:
            raise transport_error(exc, self._api_key) from None
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            raise status_error(response, self._api_key)
        return response


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - started) * 1000
