"""The study's HTTP face, mounted on the gateway app when its configuration has a ``study`` section.

``GET /study`` (the page), ``GET /study/static/<file>``, ``GET /study/demo-images/<id>``, and the JSON API
``GET /study/api/settings``, ``POST /study/api/sessions``, ``POST /study/api/sessions/<id>/ask`` (answers
as server-sent events) and ``POST /study/api/queries/<id>/rating``. Errors use the gateway's OpenAI-style
error body. The page and its API need no API key: serve a study on a network you trust.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecvl_router.serve.app import check_content_type, read_body
from ecvl_router.serve.chat import parse_json
from ecvl_router.serve.errors import GatewayError, bad_request
from ecvl_router.serve.gateway import Gateway
from ecvl_router.study.config import StudyConfig
from ecvl_router.study.service import Question, StudyService
from ecvl_router.study.store import Session

STATIC_FILES = {"study.css": "text/css; charset=utf-8", "study.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_STRICT = ConfigDict(extra="forbid")
_Body = TypeVar("_Body", bound=BaseModel)


class SessionRequest(BaseModel):
    model_config = _STRICT
    participant: str | None = Field(None, max_length=64)
    scenario: str


class AskRequest(BaseModel):
    model_config = _STRICT
    question: str = Field(max_length=4000)
    image: str | None = Field(None, description="data URI of an uploaded image")
    image_name: str | None = Field(None, max_length=200)
    demo_image: str | None = Field(None, max_length=64)


class RatingRequest(BaseModel):
    model_config = _STRICT
    score: int | None = Field(None, ge=1, le=10)
    meets: bool | None = None


def study_router(gateway: Gateway, config: StudyConfig) -> APIRouter:
    """The ``/study`` routes of a study run next to ``gateway``; the study closes with the app."""
    service = StudyService.start(gateway, config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()

    router = APIRouter(prefix="/study", lifespan=lifespan)
    max_body = gateway.config.limits.max_body_bytes

    @router.get("")
    async def page() -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @router.get("/")
    async def page_with_slash() -> RedirectResponse:
        return RedirectResponse("/study")

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise GatewayError(404, f"no study file {name!r}", code="not_found")
        return Response(_asset(name), media_type=STATIC_FILES[name], headers=PAGE_HEADERS)

    @router.get("/demo-images/{image_id}")
    async def demo_image(image_id: str) -> Response:
        image = service.demo_images.get(image_id)
        if image is None:
            raise GatewayError(404, f"no demo image {image_id!r}", code="not_found")
        return Response(image.data, media_type=image.mime, headers={"Cache-Control": "max-age=3600"})

    @router.get("/api/settings")
    async def settings() -> JSONResponse:
        return JSONResponse(service.page_settings())

    @router.post("/api/sessions")
    async def open_session(request: Request) -> JSONResponse:
        body = await _parse(request, SessionRequest, max_body)
        session = await service.open_session(body.participant, body.scenario)
        return JSONResponse(_session_view(session, config))

    @router.get("/api/sessions/{session_id}")
    async def get_session(session_id: str) -> JSONResponse:
        return JSONResponse(_session_view(await service.session(session_id), config))

    @router.post("/api/sessions/{session_id}/ask")
    async def ask(session_id: str, request: Request) -> StreamingResponse:
        body = await _parse(request, AskRequest, max_body)
        question = Question(body.question, body.image, body.image_name, body.demo_image)
        query_id, events = await service.ask(session_id, question)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Study-Query": query_id})

    @router.post("/api/queries/{query_id}/rating")
    async def rate(query_id: str, request: Request) -> JSONResponse:
        body = await _parse(request, RatingRequest, max_body)
        return JSONResponse(await service.rate(query_id, score=body.score, meets=body.meets))

    return router


def _session_view(session: Session, config: StudyConfig) -> dict[str, Any]:
    """A session as the participant may see it: without its policy."""
    scenario = config.scenario(session.scenario)
    return {"session": session.id, "participant": session.participant_id, "scenario": scenario.name,
            "title": scenario.title, "asked": session.asked, "rated": session.rated}


async def _parse(request: Request, model: type[_Body], limit: int) -> _Body:
    """The JSON body as ``model``; every problem is a 4xx naming the field."""
    check_content_type(request)
    document = parse_json(await read_body(request, limit))
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise bad_request(f"{field or 'body'}: {first['msg']}", param=field) from None


def _asset(name: str) -> bytes:
    return resources.files("ecvl_router.study").joinpath("static", name).read_bytes()
