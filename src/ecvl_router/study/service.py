"""What the study page does, without HTTP: start a session, ask (streaming the answer), rate.

A question is recorded before it is routed, then sent through the study gateway as a streamed chat
completion under the session's policy. The participant receives only the answer's text as it streams
(``delta`` events) and the time it took (``done``); which model answered (the ``ecvl`` object, the
backend's ``model``) stays on the server until the answer is rated.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from ecvl_router.config import ConfigError
from ecvl_router.serve.backends import elapsed_ms
from ecvl_router.serve.config import SERVED_MODEL, Limits
from ecvl_router.serve.conversation import unmarked
from ecvl_router.serve.errors import GatewayError, bad_request
from ecvl_router.serve.gateway import Gateway
from ecvl_router.serve.images import CheckedImage, check_image, decode_data_uri
from ecvl_router.openai_http.sse import data_events, json_object
from ecvl_router.study.config import StudyConfig
from ecvl_router.study.demo_images import DemoImage, load_demo_images
from ecvl_router.study.policies import build_study_gateway, policy_key
from ecvl_router.study.rubric import YES_NO_QUESTION, rubric_lines
from ecvl_router.study.store import Answer, RecordNotFound, Session, StoreError, StudyStore

logger = logging.getLogger(__name__)

PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Question:
    """What a participant asks: the text, and an uploaded image (data URI) or a demo image id."""

    text: str
    image: str | None = None
    image_name: str | None = None
    demo_image: str | None = None


class StudyService:
    """The study behind ``/study``: its store, its gateway (routing by policy) and its demo images."""

    def __init__(self, config: StudyConfig, store: StudyStore, gateway: Gateway, demo_images: list[DemoImage]) -> None:
        self.config = config
        self.store = store
        self.gateway = gateway
        self.limits: Limits = gateway.config.limits
        self.demo_images = {image.id: image for image in demo_images}
        self.rubric = rubric_lines()

    @classmethod
    def start(cls, gateway: Gateway, config: StudyConfig) -> StudyService:
        """Open (and migrate) the database, check it belongs to this study, load the policies' bundles."""
        try:
            demo = load_demo_images(config.demo_images, config.seed, config.demo_data)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"study.demo_data: no demo images from {config.demo_data}: {exc}") from None
        study_gateway = build_study_gateway(gateway, config)
        store = StudyStore(config.database)
        store.bind(config.policy_names, config.seed)
        return cls(config, store, study_gateway, demo)

    async def aclose(self) -> None:
        await self.gateway.aclose()

    def page_settings(self) -> dict[str, Any]:
        """What the page needs: scenarios, the rating scale with its help, demo images, the image size limit."""
        rating: dict[str, Any] = {"scale": self.config.rating}
        if self.config.rating == "score":
            rating["rubric"] = [{"score": score, "text": text} for score, text in sorted(self.rubric.items())]
        else:
            rating["question"] = YES_NO_QUESTION
        return {
            "scenarios": [{"name": s.name, "title": s.title, "mes": s.mes, "description": s.description} for s in self.config.scenarios],
            "rating": rating,
            "demo_images": [{"id": i.id, "title": i.title, "question": i.question} for i in self.demo_images.values()],
            "max_image_bytes": self.limits.max_image_bytes,
        }

    # ------------------------------------------------------------------ sessions
    async def open_session(self, participant: str | None, scenario: str) -> Session:
        """The participant's session in ``scenario`` (a new participant id when none is given)."""
        participant = (participant or "").strip() or f"P-{secrets.token_hex(3).upper()}"
        if not PARTICIPANT_ID.match(participant):
            raise bad_request("a participant id has 1-64 letters, digits, '_', '.' or '-', and starts with a letter or digit", param="participant")
        try:
            spec = self.config.scenario(scenario)
        except KeyError as exc:
            raise bad_request(str(exc).strip('"'), param="scenario") from None
        return await anyio.to_thread.run_sync(self.store.open_session, participant, spec.name, spec.mes, self.config.seed)

    async def session(self, session_id: str) -> Session:
        try:
            return await anyio.to_thread.run_sync(self.store.session, session_id)
        except RecordNotFound as exc:
            raise GatewayError(404, str(exc), code="unknown_session") from None

    # ------------------------------------------------------------------ asking
    async def ask(self, session_id: str, question: Question) -> tuple[str, AsyncIterator[bytes]]:
        """Record and route a question; returns the query id and the SSE events of its answer.

        Raises GatewayError for a bad question or image and when no backend could be reached (the query is
        then recorded as failed).
        """
        session = await self.session(session_id)
        text = question.text.strip()
        if not text:
            raise bad_request("the question is empty", param="question")
        checked = self._image(question)
        stored = None
        if checked is not None:
            name = question.demo_image or question.image_name
            stored = await anyio.to_thread.run_sync(self.store.save_image, checked.data, checked.format, name)
        query_id = await anyio.to_thread.run_sync(self.store.add_query, session.id, text, stored)
        content: str | list[dict[str, Any]] = text
        if checked is not None:
            content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": checked.data_uri()}}]
        body = {"model": SERVED_MODEL, "stream": True, "messages": [{"role": "user", "content": content}]}
        started = time.perf_counter()
        try:
            reply = await self.gateway.handle(body, scenario_header=policy_key(session.scenario, session.policy),
                                              capture_header="off")  # the study keeps its own records
        except GatewayError as error:
            await self._finish(query_id, Answer("failed", error=error.message, latency_ms=elapsed_ms(started)))
            raise
        assert reply.chunks is not None  # a streamed request
        return query_id, self._relay(query_id, reply.chunks, started)

    def _image(self, question: Question) -> CheckedImage | None:
        if question.image is not None and question.demo_image is not None:
            raise bad_request("send an uploaded image or a demo image, not both", param="image")
        if question.demo_image is not None:
            demo = self.demo_images.get(question.demo_image)
            if demo is None:
                raise bad_request(f"no demo image {question.demo_image!r}; there are: {', '.join(self.demo_images) or 'none'}", param="demo_image")
            return check_image(demo.data, "demo_image", self.limits)
        if question.image is not None:
            return decode_data_uri(question.image, "image", self.limits)
        return None

    async def _relay(self, query_id: str, chunks: AsyncIterator[bytes], started: float) -> AsyncIterator[bytes]:
        """The answer's text as ``delta`` events, then ``done`` (or ``error``), recording the query at its end."""
        yield _event("query", {"query": query_id})
        ecvl: dict[str, Any] = {}
        model = error = first_token_ms = None
        parts: list[str] = []
        try:
            async for data in data_events(chunks):
                document = json_object(data)
                if document is None:
                    continue
                ecvl = ecvl or document.get("ecvl") or {}
                model = model or document.get("model")
                if "error" in document:
                    error = str((document["error"] or {}).get("message", "the answer's stream failed"))
                    continue
                delta = unmarked(_delta_text(document))
                if delta:
                    first_token_ms = first_token_ms or elapsed_ms(started)
                    parts.append(delta)
                    yield _event("delta", {"text": delta})
        except BaseException:  # the participant left, or the server stops, before the end
            with anyio.CancelScope(shield=True):
                await chunks.aclose()  # type: ignore[attr-defined]
                await self._finish(query_id, _answer("interrupted", ecvl, model, first_token_ms, started, "".join(parts), None))
            raise
        answer = _answer("failed" if error else "answered", ecvl, model, first_token_ms, started, "".join(parts), error)
        await self._finish(query_id, answer)
        if error:
            yield _event("error", {"message": error})
        else:
            yield _event("done", {"latency_ms": answer.latency_ms, "first_token_ms": answer.first_token_ms})

    async def _finish(self, query_id: str, answer: Answer) -> None:
        await anyio.to_thread.run_sync(self.store.finish_query, query_id, answer)

    # ------------------------------------------------------------------ rating
    async def rate(self, query_id: str, *, score: int | None = None, meets: bool | None = None) -> dict[str, Any]:
        """Record the rating, then reveal who answered: route, model, time and whether it was a fallback."""
        if self.config.rating == "score" and score is None:
            raise bad_request("this study rates answers with a score from 1 to 10", param="score")
        if self.config.rating == "yes_no" and meets is None:
            raise bad_request("this study rates answers with 'meets': true or false", param="meets")
        try:
            await anyio.to_thread.run_sync(lambda: self.store.rate(query_id, score=score, meets=meets))
            row = await anyio.to_thread.run_sync(self.store.query, query_id)
        except RecordNotFound as exc:
            raise GatewayError(404, str(exc), code="unknown_query") from None
        except StoreError as exc:
            raise GatewayError(409, str(exc), code="cannot_rate") from None
        return {"route": row["route"], "model": row["model"], "fallback": bool(row["fallback"]), "latency_ms": row["latency_ms"]}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _delta_text(document: dict[str, Any]) -> str:
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _answer(status: str, ecvl: dict[str, Any], model: Any, first_token_ms: float | None, started: float, text: str, error: str | None) -> Answer:
    return Answer(
        status=status,
        request_id=ecvl.get("request_id"),
        decision=ecvl.get("decision"),
        route=ecvl.get("route"),
        model=model if isinstance(model, str) else None,
        p=ecvl.get("p"),
        tau=ecvl.get("tau"),
        fallback=ecvl.get("fallback"),
        router_ms=ecvl.get("router_ms"),
        first_token_ms=first_token_ms,
        latency_ms=elapsed_ms(started),
        text=text,
        error=error,
    )
