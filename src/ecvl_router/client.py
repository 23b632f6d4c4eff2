"""Routing in-process, without a server: :class:`RouterClient` (sync) and :class:`AsyncRouterClient`.

Both load a router bundle and offer ``decide(question, image, scenario)``; given an edge and a cloud
backend they also offer ``chat.completions.create(...)``, a drop-in for the ``openai`` client's method that
routes each request exactly as ``ecvl-router serve`` does (same code: validation, images, decision,
fallbacks, conversation stickiness) and returns the ``openai`` package's response types, with the decision in
``completion.ecvl``. Errors are raised as the ``openai`` package's exceptions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ecvl_router.features.extractor import ExtractorSettings
from ecvl_router.features.imaging import ImageInput
from ecvl_router.serve.config import BatchingPolicy, EmbeddingCachePolicy, GatewayConfig, load_gateway_config
from ecvl_router.serve.errors import GatewayError
from ecvl_router.serve.gateway import Gateway
from ecvl_router.serve.routing import Decision, QueryRouter
from ecvl_router.openai_http.sse import data_events

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk



class _RouterCore:
    """What both clients share: the loaded router, the gateway configuration and request building."""

    def __init__(
        self,
        bundle: str | Path,
        *,
        edge: Mapping[str, Any] | None = None,
        cloud: Mapping[str, Any] | None = None,
        default_scenario: str | None = None,
        **policies: Any,
    ) -> None:
        if (edge is None) != (cloud is None):
            raise ValueError("give both edge and cloud backends (for chat), or neither (for decide only)")
        batching = BatchingPolicy.model_validate(policies.get("batching") or {})
        embedding_cache = EmbeddingCachePolicy.model_validate(policies.get("embedding_cache") or {})
        self.config = (
            GatewayConfig(bundle=Path(bundle), edge=edge, cloud=cloud, default_scenario=default_scenario, **policies)
            if edge is not None
            else None
        )
        encoders = ExtractorSettings.from_yaml(Path(policies["encoders"])) if policies.get("encoders") else None
        self.router = QueryRouter.from_bundle(Path(bundle), batching=batching, embedding_cache=embedding_cache, encoders=encoders)
        self.router.warm_up()
        self.default_scenario = default_scenario or next(iter(self.router.scenarios))
        self._check_scenario(self.default_scenario)

    @classmethod
    def from_config(cls, config: GatewayConfig | str | Path) -> Self:
        """A client routing like the gateway configured by ``config`` (a GatewayConfig or a YAML file)."""
        if not isinstance(config, GatewayConfig):
            config = load_gateway_config(Path(config))
        policies = config.model_dump(include={"limits", "images", "fallback", "stickiness", "decision_log", "batching", "embedding_cache", "encoders"})
        return cls(config.bundle, edge=config.edge.model_dump(), cloud=config.cloud.model_dump(),
                   default_scenario=config.default_scenario, **policies)

    @property
    def scenarios(self) -> list[str]:
        return list(self.router.scenarios)

    def promise(self, scenario: str | None = None) -> str | None:
        """What ``scenario`` (default: the client's) guarantees about answer quality; None when it promises nothing."""
        name = scenario or self.default_scenario
        self._check_scenario(name)
        return self.router.scenarios[name].promise()

    def _submit(self, question: str, image: ImageInput | None, scenario: str | None) -> Future[Decision]:
        """The decision of one query, computed in the router's batching thread (with concurrent ones)."""
        name = scenario or self.default_scenario
        self._check_scenario(name)
        return self.router.submit(question, image, name)

    def _check_scenario(self, name: str) -> None:
        if name not in self.router.scenarios:
            raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(self.router.scenarios)}")

    def _new_gateway(self) -> Gateway:
        if self.config is None:
            raise RuntimeError("this client has no backends: create it with edge= and cloud= (or from_config) to chat")
        return Gateway(self.config.model_copy(update={"capture": None}), self.router)  # capture is the HTTP gateway's


class AsyncRouterClient(_RouterCore):
    """Asynchronous client; use it within one event loop and ``await client.aclose()`` (or ``async with``).

    ``edge`` and ``cloud`` are backend settings as in the gateway YAML (``base_url``, ``model``,
    ``api_key_env``, ...); further keyword arguments set the gateway policies (``fallback``,
    ``stickiness``, ``images``, ``limits``, ``decision_log``, ``batching``, ``embedding_cache``, ``encoders``).
    Concurrent ``decide`` calls are micro-batched like the gateway's decisions.
    """

    def __init__(self, bundle: str | Path, **settings: Any) -> None:
        super().__init__(bundle, **settings)
        self._gateway: Gateway | None = None
        self.chat = _AsyncChat(self)

    async def decide(self, question: str, image: ImageInput | None = None, scenario: str | None = None) -> Decision:
        """Edge or cloud for one query (computed in the router's batching thread, with concurrent ones)."""
        return await asyncio.wrap_future(self._submit(question, image, scenario))

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = self._new_gateway()
        return self._gateway

    async def aclose(self) -> None:
        if self._gateway is not None:
            await self._gateway.aclose()
            self._gateway = None
        await asyncio.to_thread(self.router.close)

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class RouterClient(_RouterCore):
    """Synchronous client; the routing and backend calls run on an event loop in a background thread.

    Takes the same arguments as :class:`AsyncRouterClient`; close it with :meth:`close` (or ``with``).
    """

    def __init__(self, bundle: str | Path, **settings: Any) -> None:
        super().__init__(bundle, **settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._gateway: Gateway | None = None
        self.chat = _SyncChat(self)

    def decide(self, question: str, image: ImageInput | None = None, scenario: str | None = None) -> Decision:
        """Edge or cloud for one query: ``Decision(route, p, tau, scenario, router_ms)``."""
        return self._submit(question, image, scenario).result()

    def _run(self, coroutine: Any) -> Any:
        """Run a coroutine on the background loop (started on first use) and return its result."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="ecvl-router-client", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _handle(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        async def handle() -> Any:
            if self._gateway is None:
                self._gateway = self._new_gateway()
            return await self._gateway.handle(body, **headers)

        return self._run(handle())

    def close(self) -> None:
        self.router.close()
        if self._loop is None:
            return
        if self._gateway is not None:
            self._run(self._gateway.aclose())
            self._gateway = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------- chat.completions
class _AsyncChat:
    def __init__(self, client: AsyncRouterClient) -> None:
        self.completions = _AsyncCompletions(client)


class _AsyncCompletions:
    def __init__(self, client: AsyncRouterClient) -> None:
        self._client = client

    async def create(self, *, model: str = "ecvl-router", messages: list[Any], **params: Any) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        """Like ``AsyncOpenAI().chat.completions.create``; ``model`` is ``ecvl-router[:<scenario>]``."""
        body, headers = _request_body(model, messages, params)
        try:
            reply = await self._client.gateway.handle(body, **headers)
        except GatewayError as error:
            raise _openai_error(error) from None
        if reply.chunks is None:
            return _completion(reply.body)
        return _async_chunks(reply.chunks)


class _SyncChat:
    def __init__(self, client: RouterClient) -> None:
        self.completions = _SyncCompletions(client)


class _SyncCompletions:
    def __init__(self, client: RouterClient) -> None:
        self._client = client

    def create(self, *, model: str = "ecvl-router", messages: list[Any], **params: Any) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """Like ``OpenAI().chat.completions.create``; ``model`` is ``ecvl-router[:<scenario>]``."""
        body, headers = _request_body(model, messages, params)
        try:
            reply = self._client._handle(body, headers)
        except GatewayError as error:
            raise _openai_error(error) from None
        if reply.chunks is None:
            return _completion(reply.body)
        return self._chunks(_async_chunks(reply.chunks))

    def _chunks(self, chunks: AsyncIterator[ChatCompletionChunk]) -> Iterator[ChatCompletionChunk]:
        try:
            while True:
                try:
                    yield self._client._run(chunks.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._client._run(chunks.aclose())


_HEADERS = {"x-ecvl-scenario": "scenario_header", "x-ecvl-mes": "mes_header", "x-ecvl-session": "session_header"}
"""The ``extra_headers`` of a create() call that the gateway reads, and the argument of Gateway.handle each becomes."""


def _request_body(model: str, messages: list[Any], params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body of a create() call, and the X-ECVL-* headers of its ``extra_headers``
    as Gateway.handle arguments."""
    headers = {_HEADERS[key.lower()]: value for key, value in (params.pop("extra_headers", None) or {}).items() if key.lower() in _HEADERS}
    extra = params.pop("extra_body", None) or {}
    plain = [message.model_dump(exclude_none=True) if hasattr(message, "model_dump") else message for message in messages]
    body = {"model": model, "messages": json.loads(json.dumps(plain)), **params, **extra}
    if body.get("stream") is False:
        del body["stream"]
    return body, headers


def _completion(body: dict[str, Any]) -> ChatCompletion:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(body)


async def _async_chunks(chunks: AsyncIterator[bytes]) -> AsyncIterator[ChatCompletionChunk]:
    """The SSE stream's events as ChatCompletionChunk objects; an error event raises openai.APIError."""
    import httpx
    import openai
    from openai.types.chat import ChatCompletionChunk

    try:
        async for data in data_events(chunks):
            document = json.loads(data)
            if "error" in document:
                request = httpx.Request("POST", "http://ecvl-router.local/v1/chat/completions")
                raise openai.APIError(document["error"].get("message", "stream error"), request, body=document["error"])
            yield ChatCompletionChunk.model_validate(document)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _openai_error(error: GatewayError) -> Exception:
    """The ``openai`` exception the official client raises for the same HTTP status."""
    import httpx
    import openai

    classes = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    cls = classes.get(error.status, openai.InternalServerError if error.status >= 500 else openai.APIStatusError)
    request = httpx.Request("POST", "http://ecvl-router.local/v1/chat/completions")
    response = httpx.Response(error.status, json=error.body(), request=request)
    return cls(error.message, response=response, body=error.body()["error"])
