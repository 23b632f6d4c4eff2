"""The gateway's HTTP face: an OpenAI-compatible FastAPI app around a :class:`Gateway`.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/feedback`` (a score of a captured answer), ``GET /v1/models``,
``GET /healthz`` (alive), ``GET /readyz`` (bundle loaded, backends reachable), ``GET /metrics`` (Prometheus),
``POST /admin/reload`` (admin key: reload the bundle). Every error, a malformed request or a wrong path included,
is answered in the OpenAI error format.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ecvl_router.serve.chat import parse_json
from ecvl_router.serve.config import SERVED_MODEL
from ecvl_router.serve.errors import GatewayError
from ecvl_router.serve.gateway import Gateway
from ecvl_router.serve.reload import Reloader

logger = logging.getLogger(__name__)

_PARSE_IN_THREAD_FROM = 1 << 20  # bodies this large are parsed off the event loop
_MAX_FEEDBACK_BYTES = 64 * 1024


def create_app(gateway: Gateway, *, routers: Sequence[APIRouter] = (), reloader: Reloader | None = None) -> FastAPI:
    """The FastAPI app serving ``gateway``; the app closes the gateway when it shuts down.

    ``routers`` are mounted next to the gateway's own routes (the online study is one); the gateway knows
    nothing of them. ``reloader`` reloads the bundle for ``POST /admin/reload`` (and SIGHUP, if it listens);
    by default one that reloads the bundle path the gateway serves.
    """
    reloader = reloader or Reloader(gateway)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reloader.start()
        yield
        await reloader.stop()
        await gateway.aclose()

    app = FastAPI(title="ECVL-Router gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    for router in routers:
        app.include_router(router)
    _add_openai_routes(app, gateway)
    _add_feedback_route(app, gateway)
    _add_service_routes(app, gateway)
    _add_admin_routes(app, gateway, reloader)
    _add_error_handlers(app)
    return app


def _bearer_key(request: Request) -> str | None:
    """The key of ``Authorization: Bearer <key>`` (None for another scheme); a 401 without the header."""
    header = request.headers.get("authorization", "")
    if not header:
        raise GatewayError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


def _is_one_of(key: str | None, keys: Sequence[str]) -> bool:
    return key is not None and any(hmac.compare_digest(key.encode(), known.encode()) for known in keys)


def _authorizer(gateway: Gateway) -> Callable[[Request], None]:
    """A check of the request's ``Authorization: Bearer <key>`` against the client keys (none: anyone may call)."""

    def authorize(request: Request) -> None:
        if gateway.client_keys and not _is_one_of(_bearer_key(request), gateway.client_keys):
            raise GatewayError(401, "invalid API key", code="invalid_api_key")

    return authorize


def _admin_authorizer(gateway: Gateway) -> Callable[[Request], None]:
    """A check of the request's key against the admin keys: 403 when there are none or for a client key, else 401."""

    def authorize(request: Request) -> None:
        if not gateway.admin_keys:
            raise GatewayError(403, "the admin endpoints are off: set admin_keys_env in the gateway configuration", code="admin_disabled")
        key = _bearer_key(request)
        if _is_one_of(key, gateway.admin_keys):
            return
        if _is_one_of(key, gateway.client_keys):
            raise GatewayError(403, "a client key may not use the admin endpoints; send an admin key", code="not_admin")
        raise GatewayError(401, "invalid admin key", code="invalid_api_key")

    return authorize


def _add_openai_routes(app: FastAPI, gateway: Gateway) -> None:
    """``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /v1/models/<id>``, behind the client keys."""
    authorize = _authorizer(gateway)
    limits = gateway.config.limits

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            authorize(request)
            check_content_type(request)
            raw = await read_body(request, limits.max_body_bytes)
            body = await anyio.to_thread.run_sync(parse_json, raw) if len(raw) >= _PARSE_IN_THREAD_FROM else parse_json(raw)
        except GatewayError:
            gateway.metrics.requests.labels("unknown", "none", "rejected").inc()
            raise
        reply = await gateway.handle(body, scenario_header=request.headers.get("x-ecvl-scenario"),
                                     mes_header=request.headers.get("x-ecvl-mes"), session_header=request.headers.get("x-ecvl-session"),
                                     capture_header=request.headers.get("x-ecvl-capture"), source_header=request.headers.get("x-ecvl-source"))
        headers = reply.outcome.headers()
        sampled = reply.outcome.capture
        if sampled is not None:
            headers["X-ECVL-Capture"] = "sampled"
        captured = BackgroundTask(sampled.finish) if sampled is not None else None  # after the client has its answer
        if reply.chunks is not None:
            return StreamingResponse(reply.chunks, media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"},
                                     background=captured)
        return Response(json.dumps(reply.body, ensure_ascii=False).encode(), media_type="application/json", headers=headers,
                        background=captured)

    @app.get("/v1/models")
    async def list_models(request: Request) -> JSONResponse:
        authorize(request)
        return JSONResponse({"object": "list", "data": gateway.models()})

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> JSONResponse:
        authorize(request)
        for entry in gateway.models():
            if entry["id"] == model_id:
                return JSONResponse(entry)
        raise GatewayError(404, f"model {model_id!r} is not served here; see GET /v1/models ({SERVED_MODEL}[:<scenario>])", code="model_not_found")


def _add_feedback_route(app: FastAPI, gateway: Gateway) -> None:
    """``POST /v1/feedback``: a client's score of a captured answer, behind the client keys."""
    authorize = _authorizer(gateway)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> JSONResponse:
        authorize(request)
        check_content_type(request)
        body = parse_json(await read_body(request, _MAX_FEEDBACK_BYTES))
        if gateway.capture is None:
            raise GatewayError(404, "this gateway takes no feedback: its configuration has no capture section", code="feedback_disabled")
        return JSONResponse(await gateway.capture.feedback(body))


def _add_service_routes(app: FastAPI, gateway: Gateway) -> None:
    """``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: open to probes, no key."""

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        report = await gateway.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.exposition(), media_type=gateway.metrics.content_type)


def _add_admin_routes(app: FastAPI, gateway: Gateway, reloader: Reloader) -> None:
    """``POST /admin/reload``: reload the bundle the configuration names, in every process; behind the admin keys."""
    authorize = _admin_authorizer(gateway)

    @app.post("/admin/reload")
    async def reload(request: Request) -> JSONResponse:
        authorize(request)
        try:
            result = await reloader.reload_service()
        except TimeoutError:
            raise GatewayError(504, "the reload did not finish in time; see the gateway log", type="server_error", code="reload_timeout") from None
        if not result.loaded:
            raise GatewayError(422, f"{result.message}; still serving bundle {result.bundle}", code="bundle_refused")
        return JSONResponse(result.as_dict())


def _add_error_handlers(app: FastAPI) -> None:
    """Every error, a wrong path or an unexpected exception included, in the OpenAI error format."""

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, error: GatewayError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        message = "no such endpoint" if error.status_code == 404 else str(error.detail)
        wrapped = GatewayError(error.status_code, message, code="not_found" if error.status_code == 404 else None)
        return JSONResponse(wrapped.body(), status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        wrapped = GatewayError(500, "internal gateway error; see the gateway log", type="server_error", code="internal_error")
        return JSONResponse(wrapped.body(), status_code=500)


def check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise GatewayError(415, f"Content-Type {mime!r} is not supported; send application/json", code="unsupported_media_type")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"the request body of {declared} bytes exceeds the limit of {limit}", code="request_too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise GatewayError(413, f"the request body exceeds the limit of {limit} bytes", code="request_too_large")
    except ClientDisconnect:
        raise GatewayError(400, "the client disconnected before sending the whole body", code="client_disconnected") from None
    return bytes(body)
