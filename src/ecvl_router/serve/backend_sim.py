"""Development tool: a simulated VLM served over the OpenAI protocol, answering from the demo benchmark.

This is not a model. When a request's question (and image) match an item of the demo dataset, the answer
is the response the dataset recorded for the simulated model, delayed by its recorded latency; any other
question gets a canned reply after a delay drawn from the model's latency profile (log-normal, fitted to
its recorded latencies). It exists so that the gateway can be tried, tested and load-tested offline.
``SimulatedJudge`` plays the LLM judge the same way: it gives a recorded answer the score the dataset recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ecvl_router.serve.chat import parse_json, text_of
from ecvl_router.serve.config import Limits
from ecvl_router.serve.errors import GatewayError, bad_request
from ecvl_router.serve.images import decode_data_uri

OWNER = "ecvl-router-backend-sim"
UNKNOWN_QUESTION = "(simulated {model}) This question is not in the demo benchmark, so there is no recorded answer."


@dataclass(frozen=True)
class SimAnswer:
    """What the simulated model says, how long it takes, and which demo item it came from (None: none)."""

    text: str
    latency_s: float
    output_tokens: int
    item_id: str | None


@dataclass(frozen=True)
class _Recorded:
    item_id: str
    image: Path | None
    response: str
    latency_s: float
    output_tokens: int


class SimulatedModel:
    """One model's recorded answers in a demo dataset, looked up by question (and image bytes)."""

    def __init__(self, name: str, recorded: dict[str, list[_Recorded]], latency_median_s: float, latency_sigma: float) -> None:
        self.name = name
        self._recorded = recorded
        self.latency_median_s = latency_median_s
        self.latency_sigma = latency_sigma
        self._image_digests: dict[Path, str] = {}

    @classmethod
    def from_dataset(cls, folder: Path, model: str) -> SimulatedModel:
        """The answers of ``model`` in a dataset folder; KeyError lists the dataset's models."""
        from ecvl_router.data import load_rsd

        rsd = load_rsd(folder)
        responses = rsd.responses[rsd.responses["model"] == model]
        if responses.empty:
            raise KeyError(f"model {model!r} has no responses in {folder}; it has: {', '.join(rsd.models)}")
        items = rsd.items.set_index("item_id")
        recorded: dict[str, list[_Recorded]] = defaultdict(list)
        for row in responses.itertuples(index=False):
            item = items.loc[row.item_id]
            tokens = row.output_tokens if isinstance(row.output_tokens, (int, float)) and not math.isnan(row.output_tokens) else len(str(row.response).split())
            recorded[_key(item["question"])].append(
                _Recorded(row.item_id, rsd.image_path(item["image"]), str(row.response), float(row.latency_s), int(tokens))
            )
        logs = np.log(np.clip(responses["latency_s"].to_numpy(dtype=float), 1e-3, None))
        return cls(model, dict(recorded), float(np.exp(np.median(logs))), float(logs.std()))

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._recorded.values())

    def answer(self, question: str, image: bytes | None, rng: np.random.Generator) -> SimAnswer:
        """The recorded answer to ``question`` (the item with the same image, when several share it)."""
        candidates = self._recorded.get(_key(question))
        if not candidates:
            latency = self.latency_median_s * math.exp(self.latency_sigma * rng.standard_normal())
            text = UNKNOWN_QUESTION.format(model=self.name)
            return SimAnswer(text, latency, len(text.split()), None)
        chosen = candidates[0]
        if image is not None and len(candidates) > 1:
            digest = hashlib.sha256(image).hexdigest()
            chosen = next((c for c in candidates if c.image is not None and self._digest(c.image) == digest), chosen)
        return SimAnswer(chosen.response, chosen.latency_s, chosen.output_tokens, chosen.item_id)

    def _digest(self, path: Path) -> str:
        if path not in self._image_digests:
            self._image_digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._image_digests[path]


JUDGE_MODEL = "sim-judge"
UNKNOWN_ANSWER = "(simulated judge) This answer is not one the demo benchmark recorded, so it gets the lowest score."


class SimulatedJudge:
    """A judge that knows the demo benchmark's scores: the recorded score of a recorded answer, found in the prompt.

    The prompt (the last user turn) must contain a demo question and one of the answers the dataset recorded
    for it, as the judge's rubric does; the reply is that answer's recorded score on its first line (the mean,
    where the same text was recorded with several scores). Any other answer gets the scale's lowest score.
    """

    name = JUDGE_MODEL

    def __init__(self, answers: dict[str, list[tuple[str, float]]], lowest: float, latency_s: float = 0.05) -> None:
        self._answers = answers
        self.lowest = lowest
        self.latency_s = latency_s

    @classmethod
    def from_dataset(cls, folder: Path) -> SimulatedJudge:
        """Every model's recorded answers and scores in a dataset folder, by question."""
        from ecvl_router.data import load_rsd

        rsd = load_rsd(folder)
        questions = rsd.items.set_index("item_id")["question"]
        scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rsd.responses.itertuples(index=False):
            scores[_key(questions.loc[row.item_id])][_key(str(row.response))].append(float(row.score))
        # a judge sees only the text: one answer recorded with several scores gets their mean; the longest
        # answers are tried first, so that one containing a shorter one wins
        answers = {q: sorted(((text, float(np.mean(values))) for text, values in by_text.items()), key=lambda entry: -len(entry[0]))
                   for q, by_text in scores.items()}
        return cls(answers, rsd.info.score_min)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._answers.values())

    def answer(self, prompt: str, image: bytes | None, rng: np.random.Generator) -> SimAnswer:
        """The recorded score of the recorded answer that ``prompt`` quotes (the lowest score when it quotes none)."""
        text = _key(prompt)
        for question, answers in self._answers.items():
            if question in text:
                score = next((value for answer, value in answers if answer and answer in text), None)
                if score is not None:
                    reply = f"{score:g}\n(simulated judge) The score the demo benchmark recorded for this answer."
                    return SimAnswer(reply, self.latency_s, len(reply.split()), None)
        return SimAnswer(f"{self.lowest:g}\n{UNKNOWN_ANSWER}", self.latency_s, len(UNKNOWN_ANSWER.split()) + 1, None)


def create_backend_sim_app(model: SimulatedModel | SimulatedJudge, *, latency_scale: float = 1.0, seed: int = 0) -> FastAPI:
    """An OpenAI-compatible app serving ``model``; delays are multiplied by ``latency_scale`` (0: instant).

    ``GET /sim/stats`` reports how many chat requests arrived and how many matched a demo item.
    """
    app = FastAPI(title=f"{OWNER}: {model.name} (simulated)", docs_url=None, redoc_url=None)
    rng = np.random.default_rng(seed)
    stats = {"requests": 0, "matched": 0}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = parse_json(await request.body())
        stats["requests"] += 1
        if body.get("model") != model.name:
            raise GatewayError(404, f"model {body.get('model')!r} is not served here; this simulator serves {model.name!r}", code="model_not_found")
        question, image = _query(body)
        answer = model.answer(question, image, rng)
        stats["matched"] += answer.item_id is not None
        delay = answer.latency_s * latency_scale
        reply_id = f"chatcmpl-sim-{uuid.uuid4().hex[:12]}"
        usage = {"prompt_tokens": len(question.split()) + (256 if image else 0), "completion_tokens": answer.output_tokens}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _stream(reply_id, model.name, answer.text, delay, usage if include_usage else None)
            return StreamingResponse(events, media_type="text/event-stream")
        if delay > 0:
            await asyncio.sleep(delay)
        return JSONResponse(
            {
                "id": reply_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "system_fingerprint": OWNER,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        entry = {"id": model.name, "object": "model", "created": 0, "owned_by": f"{OWNER} (simulated, not a real model)"}
        return JSONResponse({"object": "list", "data": [entry]})

    @app.get("/sim/stats")
    async def sim_stats() -> JSONResponse:
        return JSONResponse({"model": model.name, **stats})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "simulated": True})

    @app.exception_handler(GatewayError)
    async def error(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    return app


def _key(question: str) -> str:
    return " ".join(question.split())


def _query(body: dict[str, Any]) -> tuple[str, bytes | None]:
    """The last user turn's text and its first image's bytes (data URIs only)."""
    messages = body.get("messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) else []
    if not users or not isinstance(users[-1].get("content"), (str, list)):
        raise bad_request("the request has no user message", param="messages")
    content = users[-1]["content"]
    image = None
    if isinstance(content, list):
        urls = [p["image_url"]["url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url" and isinstance(p.get("image_url"), dict)]
        if urls and str(urls[0]).startswith("data:"):
            image = decode_data_uri(urls[0], "image_url", Limits()).data
        content = [p for p in content if isinstance(p, dict)]
    return text_of(content), image


async def _stream(reply_id: str, model: str, text: str, delay_s: float, usage: dict[str, int] | None) -> AsyncIterator[str]:
    """The answer as SSE chunks: 30 % of the delay before the first token, the rest spread over the words."""
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else []
        document = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices, **extra}
        return f"data: {json.dumps(document)}\n\n"

    words = text.split(" ")
    if delay_s > 0:
        await asyncio.sleep(0.3 * delay_s)
    yield chunk({"role": "assistant", "content": ""})
    for index, word in enumerate(words):
        if delay_s > 0:
            await asyncio.sleep(0.7 * delay_s / len(words))
        yield chunk({"content": word if index == 0 else " " + word})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk(None, usage=usage)
    yield "data: [DONE]\n\n"
