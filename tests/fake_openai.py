"""A local OpenAI-compatible chat server for the collect and judge tests (FastAPI app served by uvicorn).

The requested model id selects the behaviour:

- ``good``: answers at once, with usage; ``nousage``: the same without a usage field;
- ``slow``: answers after ``state.delay_s`` (the peak number of such requests at once is recorded);
- ``flaky``: per question, first a 429 with Retry-After, then a 500, then the answer;
- ``always429``: always 429 (Retry-After 0); ``retry-later``: 429 asking to wait an hour;
- ``broken``: questions containing ``[malformed]`` get a body that is not JSON, ``[empty]`` no choices;
- ``echo-auth``: 401 whose body repeats the Authorization header it received;
- ``strict``: 400 (an OpenAI-style invalid_request_error) for any request with a ``logit_bias``, else like ``good``;
- ``judge…`` (any id starting so): scores the answer found after ``[Model Answer]``: answers containing ``[unjudgeable]`` get prose
  without a score, ``[eleven]`` gets 11, others ``1 + len(answer) % 10`` on the first line.

Streaming (``stream: true``) sends the answer word by word after ``state.first_token_delay_s``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class ServerState:
    delay_s: float = 0.05
    first_token_delay_s: float = 0.05
    requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    in_flight: int = 0
    peak_in_flight: int = 0


def _question(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part.get("type") == "text")


def answer_for(model: str, question: str) -> str:
    """The deterministic answer of a model (what the tests expect in the results)."""
    return f"{model} answers: {question.splitlines()[0][:60]}"


def judge_output(prediction: str) -> str:
    if "[unjudgeable]" in prediction:
        return "The answer is hard to assess; it neither matches nor contradicts the reference."
    if "[eleven]" in prediction:
        return "Score: 11\nBeyond perfect."
    return f"{1 + len(prediction) % 10}\nThe answer is compared with the reference: length {len(prediction)}."


def _completion(model: str, text: str, usage: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage:
        document["usage"] = {"prompt_tokens": 11, "completion_tokens": len(text.split()), "total_tokens": 11 + len(text.split())}
    return document


def _stream(model: str, text: str, state: ServerState, include_usage: bool):
    async def events():
        await asyncio.sleep(state.first_token_delay_s)
        for index, word in enumerate(text.split(" ")):
            piece = word if index == 0 else " " + word
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": piece}}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        if include_usage:
            usage = {"prompt_tokens": 11, "completion_tokens": len(text.split()), "total_tokens": 11 + len(text.split())}
            yield f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body["model"]
        question = _question(body)
        state.requests.append({"model": model, "authorization": request.headers.get("authorization"), "body": body})
        state.attempts[(model, question)] += 1
        attempt = state.attempts[(model, question)]
        if model == "slow":
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
            try:
                await asyncio.sleep(state.delay_s)
            finally:
                state.in_flight -= 1
        if model == "flaky" and attempt == 1:
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "0"})
        if model == "flaky" and attempt == 2:
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        if model == "always429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "0"})
        if model == "retry-later":
            return JSONResponse({"error": {"message": "quota"}}, status_code=429, headers={"Retry-After": "3600"})
        if model == "echo-auth":
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {request.headers.get('authorization')}"}}, status_code=401)
        if model == "strict" and "logit_bias" in body:
            error = {"message": "logit_bias is not supported by this model", "type": "invalid_request_error", "param": "logit_bias"}
            return JSONResponse({"error": error}, status_code=400)
        if model == "broken" and "[malformed]" in question:
            return Response('{"choices": [{"message": ', media_type="application/json")
        if model == "broken" and "[empty]" in question:
            return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
        if model.startswith("judge"):
            prediction = re.search(r"\[Model Answer\] (.*?)\n\n\[System\]", question, re.S)
            text = judge_output(prediction[1] if prediction else "")
        else:
            text = answer_for(model, question)
        if body.get("stream"):
            return _stream(model, text, state, bool((body.get("stream_options") or {}).get("include_usage")))
        return JSONResponse(_completion(model, text, usage=model != "nousage"))

    return app


class FakeServer:
    """Serves the app on 127.0.0.1 in a background thread: ``with FakeServer() as server: server.base_url``."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(self.state), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
