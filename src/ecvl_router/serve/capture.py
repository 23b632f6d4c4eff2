"""Capture in the gateway: a sampled share of routed requests, the answer each got, the other backend's answer to
the same request (shadow) and client feedback, written to a capture store (``ecvl_router.capture_store``).

On the client's path there is only the sampling draw and, for a sampled stream, keeping its bytes:

- a request is eligible unless its scenario has ``cloud_allowed: false``, it sends ``X-ECVL-Capture: off``,
  it continues a conversation or has no question text (an item of a dataset is one question); an eligible
  request is sampled with probability ``sample``, at most ``max_per_hour`` per process in any hour;
- once the client has its answer (a background task of the response, run after its last byte), the capture
  goes to the writer thread, which builds its records (parsing a streamed answer there) and writes them in
  batches, one transaction each;
- with ``shadow`` on, the request then waits in a bounded queue for one of ``shadow_concurrency`` tasks that
  ask the other backend, not streamed, and hand its answer or its failure to the writer; a full queue drops
  the shadow call and counts it (``ecvl_router_shadow_dropped_total``).

Feedback goes through the same writer, behind every capture this process handed it before, so feedback sent
as soon as an answer arrived finds its capture.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from ecvl_router.capture_store import AnswerRecord, CapturedImage, CaptureRecord, CaptureStore, CaptureStoreError, FeedbackRecord, StoreRecord
from ecvl_router.config import ConfigError
from ecvl_router.openai_http.errors import CallError
from ecvl_router.openai_http.sse import EVENT_END, event_data, json_object
from ecvl_router.scenarios import Scenario
from ecvl_router.serve.backends import Backend
from ecvl_router.serve.chat import ChatRequest
from ecvl_router.serve.config import CapturePolicy
from ecvl_router.serve.conversation import unmarked
from ecvl_router.serve.errors import GatewayError, bad_request
from ecvl_router.serve.images import CheckedImage
from ecvl_router.serve.routing import Route

if TYPE_CHECKING:
    from ecvl_router.serve.gateway import Outcome

logger = logging.getLogger(__name__)

_MAX_PENDING_WRITES = 4096
_MAX_BATCH = 256
_MAX_COMMENT_CHARS = 4000
_HOUR_S = 3600.0
_FEEDBACK_FIELDS = ("request_id", "score", "comment")
_NOT_FORWARDED = ("stream", "stream_options")

RecordMaker = Callable[[], list[StoreRecord]]


def capture_refused(header: str | None) -> bool:
    """Whether ``X-ECVL-Capture`` asks not to capture the request (``off``); a value other than ``on``/``off`` is a 400."""
    if header is None:
        return False
    value = header.strip().lower()
    if value not in ("on", "off"):
        raise bad_request(f"X-ECVL-Capture must be 'off' or 'on', not {header[:40]!r}", param="X-ECVL-Capture")
    return value == "off"


@dataclass
class Sampled:
    """A request chosen for capture; the gateway fills in its answer as it arrives."""

    capture: Capture
    request: ChatRequest
    image: CheckedImage | None
    outcome: Outcome
    document: dict[str, Any] | None = None
    chunks: list[bytes] = field(default_factory=list)
    stream_started: float | None = None
    stream_ended: float | None = None

    def stream_began(self) -> None:
        self.stream_started = time.perf_counter()

    def stream_completed(self) -> None:
        self.stream_ended = time.perf_counter()

    @property
    def answered(self) -> bool:
        """Whether the client got a whole answer (a stream cut short, or closed by the client, is not captured)."""
        return self.document is not None or self.stream_ended is not None

    async def finish(self) -> None:
        """Hand the capture to the writer and queue its shadow call (run after the client has its answer)."""
        await self.capture.finish(self)

    def records(self) -> list[StoreRecord]:
        """The capture and served-answer records (none when the answer has no text); built in the writer thread."""
        outcome, decision = self.outcome, self.outcome.decision
        assert outcome.route is not None and outcome.backend_ms is not None
        latency_s = outcome.backend_ms / 1000
        if self.document is not None:
            text, usage = message_text(self.document), self.document.get("usage")
        else:
            assert self.stream_started is not None and self.stream_ended is not None
            text, usage = streamed_text(self.chunks)
            latency_s += self.stream_ended - self.stream_started
        if text is None:
            return []
        image = CapturedImage(self.image.data, self.image.format.lower() or "png") if self.image is not None else None
        capture = CaptureRecord(outcome.request_id, decision.scenario, decision.route, decision.p, decision.tau, decision.mes,
                                self.request.question, image, self.request.stream)
        served = AnswerRecord(outcome.request_id, outcome.route, "served", self.capture.names[outcome.route], outcome.model, True,
                              unmarked(text), latency_s, _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens"))
        return [capture, served]


class Capture:
    """The gateway's capture: sampling, the writer thread, the shadow queue, feedback and their metrics."""

    def __init__(self, policy: CapturePolicy, store: CaptureStore, backends: dict[Route, Backend], names: dict[Route, str],
                 scale: tuple[float, float], registry: CollectorRegistry) -> None:
        self.policy = policy
        self.store = store
        self.backends = backends
        self.names = names
        self.scale = scale
        self._writer = _Writer(store)
        self._shadows: asyncio.Queue[Sampled] | None = None
        self._shadow_tasks: list[asyncio.Task[None]] = []
        self._recent: deque[float] = deque()
        self._random = random.Random()
        self.captured = Counter("ecvl_router_captures", "Requests written to the capture store, by scenario", ["scenario"], registry=registry)
        self.skipped = Counter("ecvl_router_capture_skipped", "Requests capture left out for a reason other than sampling",
                               ["reason"], registry=registry)
        self.shadow_calls = Counter("ecvl_router_shadow_calls", "Shadow calls to the backend that did not answer, by route and outcome",
                                    ["route", "outcome"], registry=registry)
        self.shadow_dropped = Counter("ecvl_router_shadow_dropped", "Shadow calls dropped because the shadow queue was full", registry=registry)
        Gauge("ecvl_router_shadow_queue", "Shadow calls waiting in the queue", registry=registry).set_function(
            lambda: self._shadows.qsize() if self._shadows is not None else 0
        )

    @classmethod
    def open(cls, policy: CapturePolicy, backends: dict[Route, Backend], names: dict[Route, str | None],
             scale: tuple[float, float], registry: CollectorRegistry) -> Capture:
        """Open (or create) the store of ``policy.dir``; ConfigError when it cannot serve this gateway."""
        try:
            store = CaptureStore(policy.dir)
            if all(math.isfinite(bound) for bound in scale):
                store.bind_scale(*scale)
        except (CaptureStoreError, sqlite3.Error, OSError) as exc:
            raise ConfigError(f"capture.dir {policy.dir}: {exc}") from None
        named = {role: names.get(role) or backend.model for role, backend in backends.items()}
        return cls(policy, store, backends, named, scale, registry)

    # ------------------------------------------------------------------ on the client's path
    def sample(self, request: ChatRequest, image: CheckedImage | None, outcome: Outcome, scenario: Scenario, refused: bool) -> Sampled | None:
        """The request as chosen for capture, or None (not eligible, not drawn, or over the hourly limit)."""
        reason = self._ineligible(request, scenario, refused, outcome.decision.sticky)
        if reason is not None:
            self.skipped.labels(reason).inc()
            return None
        if self._random.random() >= self.policy.sample:
            return None
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= _HOUR_S:
            self._recent.popleft()
        if len(self._recent) >= self.policy.max_per_hour:
            self.skipped.labels("hourly_limit").inc()
            return None
        self._recent.append(now)
        return Sampled(self, request, image, outcome)

    @staticmethod
    def _ineligible(request: ChatRequest, scenario: Scenario, refused: bool, kept_route: bool) -> str | None:
        """Why ``request`` may not be captured (a later turn of a conversation: ``kept_route``), or None."""
        if not scenario.cloud_allowed:
            return "cloud_not_allowed"
        if refused:
            return "opted_out"
        if sum(1 for message in request.messages if message.get("role") == "user") > 1 or kept_route:
            return "conversation"
        return None if request.question.strip() else "no_question"

    # ------------------------------------------------------------------ after the client has its answer
    async def finish(self, sampled: Sampled) -> None:
        if not sampled.answered:
            self.skipped.labels("not_answered").inc()
            return
        future = self._writer.submit(sampled.records)
        if future is None:
            self.skipped.labels("write_queue_full").inc()
            return
        future.add_done_callback(lambda done: self._count_capture(done, sampled.outcome.decision.scenario))
        if self.policy.shadow:
            self._queue_shadow(sampled)

    def _count_capture(self, done: Future[list[bool]], scenario: str) -> None:
        if done.exception() is not None:
            self.skipped.labels("write_failed").inc()
        elif done.result() and done.result()[0]:
            self.captured.labels(scenario).inc()
        else:
            self.skipped.labels("not_answered").inc()

    def _queue_shadow(self, sampled: Sampled) -> None:
        if self._shadows is None:
            self._shadows = asyncio.Queue(self.policy.shadow_queue)
            self._shadow_tasks = [asyncio.create_task(self._shadow_worker(), name=f"capture-shadow-{index}")
                                  for index in range(self.policy.shadow_concurrency)]
        try:
            self._shadows.put_nowait(sampled)
        except asyncio.QueueFull:
            self.shadow_dropped.inc()

    async def _shadow_worker(self) -> None:
        assert self._shadows is not None
        while True:
            sampled = await self._shadows.get()
            try:
                record = await self._ask_other(sampled)
            except Exception:  # a shadow call must never stop the worker
                logger.exception("shadow call for request %s failed unexpectedly", sampled.outcome.request_id)
                continue
            self.shadow_calls.labels(record.route, "ok" if record.ok else "failed").inc()
            if self._writer.submit(lambda record=record: [record]) is None:
                self.skipped.labels("write_queue_full").inc()

    async def _ask_other(self, sampled: Sampled) -> AnswerRecord:
        """The answer of the backend that did not answer the client, to the same request (not streamed)."""
        route: Route = "cloud" if sampled.outcome.route == "edge" else "edge"
        backend = self.backends[route]
        body = {key: value for key, value in sampled.request.body.items() if key not in _NOT_FORWARDED}
        request_id, model = sampled.outcome.request_id, self.names[route]
        called = time.perf_counter()
        try:
            document, _ = await backend.complete(backend.payload(body))
        except CallError as error:
            return AnswerRecord(request_id, route, "shadow", model, backend.model, False, error_kind=error.kind, error_message=error.message)
        latency_s = time.perf_counter() - called
        text = message_text(document)
        if text is None:
            return AnswerRecord(request_id, route, "shadow", model, backend.model, False, error_kind="malformed_response",
                                error_message="the first choice has no text content")
        usage = document.get("usage")
        model_id = document.get("model") if isinstance(document.get("model"), str) else backend.model
        return AnswerRecord(request_id, route, "shadow", model, model_id, True, text, latency_s,
                            _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens"))

    # ------------------------------------------------------------------ feedback
    async def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store a client's score of a captured answer; 400 for a malformed body, 404 for a request not captured."""
        record = parse_feedback(body, self.scale)
        future = self._writer.submit(lambda: [record])
        if future is None:
            raise _store_unavailable("its write queue is full")
        try:
            (stored,) = await asyncio.wrap_future(future)
        except (sqlite3.Error, OSError) as exc:
            raise _store_unavailable(type(exc).__name__) from None
        if not stored:
            raise GatewayError(
                404,
                f"no captured request with id {record.request_id[:64]!r}: feedback is taken for captured requests "
                "(a sampled share, answered with header X-ECVL-Capture: sampled)",
                code="request_not_found",
                param="request_id",
            )
        return {"object": "feedback", "request_id": record.request_id, "score": record.score, "comment": record.comment}

    async def aclose(self) -> None:
        """Stop the shadow tasks (calls still waiting are not made) and write what the writer holds."""
        for task in self._shadow_tasks:
            task.cancel()
        await asyncio.gather(*self._shadow_tasks, return_exceptions=True)
        waiting = self._shadows.qsize() if self._shadows is not None else 0
        if waiting:
            logger.info("%d shadow call(s) still waiting at shutdown were not made", waiting)
        await asyncio.to_thread(self._writer.close)


def parse_feedback(body: dict[str, Any], scale: tuple[float, float]) -> FeedbackRecord:
    """A feedback body checked: ``request_id``, a ``score`` on ``scale`` and an optional ``comment``; 400 otherwise."""
    unknown = [name for name in body if name not in _FEEDBACK_FIELDS]
    if unknown:
        raise bad_request(f"unknown field {unknown[0][:40]!r}; a feedback has request_id, score and comment", param=unknown[0][:40])
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise bad_request("'request_id' is required: the X-Request-ID of the rated answer (also its ecvl.request_id)", param="request_id")
    score, (low, high) = body.get("score"), scale
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise bad_request(f"'score' is required: a number on the score scale [{low:g}, {high:g}]", param="score")
    if not low <= score <= high:
        raise bad_request(f"'score' {score:g} is outside the score scale [{low:g}, {high:g}]", param="score")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > _MAX_COMMENT_CHARS):
        raise bad_request(f"'comment' must be a string of at most {_MAX_COMMENT_CHARS} characters", param="comment")
    return FeedbackRecord(request_id, float(score), comment)


def _store_unavailable(why: str) -> GatewayError:
    return GatewayError(503, f"the capture store cannot take the feedback now ({why}); try again", type="server_error", code="capture_unavailable")


def message_text(document: dict[str, Any]) -> str | None:
    """The text of a chat completion's first choice (None when it has none)."""
    choices = document.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


def streamed_text(chunks: list[bytes]) -> tuple[str | None, Any]:
    """The first choice's text and the usage of a streamed completion's SSE bytes (text None: no choice in it)."""
    pieces: list[str] = []
    usage: Any = None
    saw_choice = False
    for event in EVENT_END.split(b"".join(chunks)):
        data = event_data(event)
        document = json_object(data) if data and data != b"[DONE]" else None
        if document is None:
            continue
        usage = document.get("usage") or usage
        for choice in document.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                saw_choice = True
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                pieces += [content] if isinstance(content, str) else []
    return ("".join(pieces) if saw_choice else None), usage


def _tokens(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Writer:
    """The thread that writes to the capture store: jobs in the order given, in batches of one transaction each."""

    def __init__(self, store: CaptureStore) -> None:
        self._store = store
        self._jobs: queue.Queue[tuple[RecordMaker, Future[list[bool]]] | None] = queue.Queue(_MAX_PENDING_WRITES)
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def submit(self, make: RecordMaker) -> Future[list[bool]] | None:
        """Queue a job (``make`` builds its records in the writer thread); its future says which were stored. None: queue full."""
        future: Future[list[bool]] = Future()
        try:
            self._jobs.put_nowait((make, future))
        except queue.Full:
            return None
        return future

    def close(self) -> None:
        """Write the jobs queued so far, then stop."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        with self._store.connection() as connection:
            stopping = False
            while not stopping:
                batch, stopping = self._next_batch()
                self._write(connection, batch)

    def _next_batch(self) -> tuple[list[tuple[RecordMaker, Future[list[bool]]]], bool]:
        first = self._jobs.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < _MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _write(self, connection: sqlite3.Connection, batch: list[tuple[RecordMaker, Future[list[bool]]]]) -> None:
        made: list[tuple[list[StoreRecord], Future[list[bool]]]] = []
        for make, future in batch:
            try:
                made.append((make(), future))
            except Exception as exc:  # a record that cannot be built must not cost the others theirs
                logger.exception("a capture record could not be built")
                future.set_exception(exc)
        try:
            stored = self._store.write([record for records, _ in made for record in records], connection)
        except (sqlite3.Error, OSError) as exc:
            logger.error("cannot write to the capture store %s: %s", self._store.folder, exc)
            for _, future in made:
                future.set_exception(exc)
            return
        start = 0
        for records, future in made:
            future.set_result(stored[start : start + len(records)])
            start += len(records)
