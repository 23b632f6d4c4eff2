"""The routing gateway's core, shared by the HTTP server and the Python client.

One request: validate it, check its images (fetching URLs), keep its conversation's route (``stickiness``) or
decide edge or cloud from the last user turn (in the router's batching thread, together with concurrent
requests, so the event loop stays responsive), forward it to the chosen backend, fall back to the other one
when that fails and the scenario allows it, and annotate the answer with the decision.

The router can be swapped while requests are served (:meth:`Gateway.swap`, used by ``serve/reload.py``): a
request decides with the bundle served when it arrived, and a replaced router is closed once the last
request deciding with it has its decision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import httpx

from ecvl_router.config import ConfigError
from ecvl_router.features.extractor import ExtractorSettings
from ecvl_router.scenarios import Scenario
from ecvl_router.openai_http.errors import CallError, is_retryable_status
from ecvl_router.serve.backends import Backend, elapsed_ms
from ecvl_router.serve.capture import Capture, Sampled, capture_refused
from ecvl_router.serve.chat import ChatRequest, parse_chat_request
from ecvl_router.serve.config import SERVED_MODEL, GatewayConfig
from ecvl_router.serve.conversation import MARKERS, mark, strip_markers
from ecvl_router.serve.conversation_keys import AnswerTranscript
from ecvl_router.serve.decision_log import DecisionLog
from ecvl_router.serve.drift import DriftReference
from ecvl_router.serve.errors import GatewayError, bad_request
from ecvl_router.serve.heap import refreeze_heap
from ecvl_router.serve.images import CheckedImage, ImageFetcher, decode_data_uri
from ecvl_router.serve.metrics import GatewayMetrics, RouterCounts
from ecvl_router.serve.routing import Decision, QueryRouter, Route
from ecvl_router.serve.stickiness import Stickiness, Turn
from ecvl_router.openai_http.sse import EVENT_END

logger = logging.getLogger(__name__)

_GATEWAYS_OWN_STATUSES = (401, 403, 404)  # the gateway's key or model id was refused: not the client's to fix
CLIENT_CLOSED = 499
"""The decision log's status of a stream the client closed before its end."""


MAX_SOURCE_CHARS = 200
"""Longest ``X-ECVL-Source`` accepted."""


def requested_source(header: str | None) -> str | None:
    """The source of ``X-ECVL-Source`` (whitespace stripped); None without the header; 400 when empty or too long."""
    if header is None:
        return None
    source = header.strip()
    if not source or len(source) > MAX_SOURCE_CHARS:
        raise bad_request(f"X-ECVL-Source must name a source in 1 to {MAX_SOURCE_CHARS} characters, got {len(source)}",
                          param="X-ECVL-Source")
    return source


def passed_through(error: CallError) -> bool:
    """Whether a backend's error is the client's to fix: a 4xx other than 408 and 429 (transient) and 401, 403
    and 404 (the gateway's own key or model id). Such an error goes back to the client; no other backend is tried."""
    status = error.status
    return status is not None and 400 <= status < 500 and not is_retryable_status(status) and status not in _GATEWAYS_OWN_STATUSES


@dataclass
class Outcome:
    """What became of one routed request: the decision, who answered, fallbacks, attempts and timings."""

    request_id: str
    decision: Decision
    scenario: Scenario
    stream: bool
    images: int
    started: float
    bundle: str | None = None
    route: Route | None = None
    model: str | None = None
    fallback: bool = False
    attempts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    backend_ms: float | None = None
    capture: Sampled | None = None

    def ecvl(self) -> dict[str, Any]:
        """The ``ecvl`` object added to the response body and to the first streamed chunk."""
        d = self.decision
        return {
            "route": self.route,
            "decision": d.route,
            "p": d.p,
            "tau": d.tau,
            "scenario": d.scenario,
            "mes": d.mes,
            "router_ms": round(d.router_ms, 3),
            "fallback": self.fallback,
            "sticky": d.sticky,
            "bundle": self.bundle,
            "request_id": self.request_id,
        }

    def headers(self) -> dict[str, str]:
        """The same as ``X-ECVL-*`` response headers."""
        d = self.decision
        headers = {
            "X-ECVL-Route": str(self.route),
            "X-ECVL-Decision": d.route,
            "X-ECVL-Scenario": d.scenario,
            "X-ECVL-Tau": f"{d.tau:g}",
            "X-ECVL-Router-Ms": f"{d.router_ms:.3f}",
            "X-ECVL-Batch-Size": str(d.batch_size),
            "X-ECVL-Fallback": str(self.fallback).lower(),
            "X-ECVL-Sticky": str(d.sticky).lower(),
            "X-Request-ID": self.request_id,
        }
        if d.p is not None:
            headers["X-ECVL-P"] = f"{d.p:.6f}"
        if d.mes is not None:
            headers["X-ECVL-MES"] = f"{d.mes:g}"
        if self.bundle is not None:
            headers["X-ECVL-Bundle"] = self.bundle
        return headers


@dataclass
class Reply:
    """A successful answer: a whole completion body, or the SSE byte stream of one."""

    outcome: Outcome
    body: dict[str, Any] | None = None
    chunks: AsyncIterator[bytes] | None = None


@dataclass
class ServedBundle:
    """A router the gateway decides with: its scenarios, default scenario and the bundle's content hash.

    ``in_flight`` counts the requests deciding with it; once ``retired`` (replaced), it is closed (if
    ``owned``) when that count reaches 0. ``counts`` copies the router's counts into the metrics; ``drift`` is
    what the bundle saw held out, for the drift metrics.
    """

    router: QueryRouter
    scenarios: dict[str, Scenario]
    default_scenario: str
    digest: str | None
    owned: bool
    counts: RouterCounts | None
    drift: DriftReference
    in_flight: int = 0
    retired: bool = False


def load_router(config: GatewayConfig) -> QueryRouter:
    """The bundle ``config`` names, with its encoders (or the configured stand-ins), loaded and warmed up."""
    encoders = ExtractorSettings.from_yaml(config.encoders) if config.encoders is not None else None
    router = QueryRouter.from_bundle(config.bundle, batching=config.batching, embedding_cache=config.embedding_cache, encoders=encoders,
                                     encoder_runtime=config.encoder_runtime)
    router.warm_up()
    return router


class Gateway:
    """Routes OpenAI chat-completion requests between an edge and a cloud backend; see the module docstring.

    Create it with :meth:`from_config` (loads the bundle and its encoders), use it inside one event loop,
    and close it with :meth:`aclose`.
    """

    def __init__(self, config: GatewayConfig, router: QueryRouter, *, metrics: GatewayMetrics | None = None) -> None:
        self.config = config
        self.client_keys = config.client_keys()
        self.admin_keys = config.admin_keys()
        self.metrics = metrics or GatewayMetrics()
        specs = {"edge": config.edge, "cloud": config.cloud}
        self.backends: dict[Route, Backend] = {
            role: Backend(role, specs[role], model, specs[role].api_key(role)) for role, model in self._models(router).items()
        }
        self.windows = self.metrics.watch_drift(config.drift.window)
        self.served = self._served(router, owned=False)
        self.metrics.serve_bundle(self.served.digest)
        self.windows.serve(self.served.drift)
        self.fetcher = ImageFetcher(config.images, config.limits)
        self.decision_log = DecisionLog(config.decision_log) if config.decision_log else None
        self.stickiness = Stickiness(config.stickiness, self.metrics)
        self.capture = (Capture.open(config.capture, self.backends, router.model_names(), router.score_scale, self.metrics.registry)
                        if config.capture is not None else None)
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: GatewayConfig, *, metrics: GatewayMetrics | None = None) -> Gateway:
        """Load the bundle and its encoders, warm them up, and build the gateway (which closes the router)."""
        gateway = cls(config, load_router(config), metrics=metrics)
        gateway.owns_router = True
        return gateway

    @property
    def router(self) -> QueryRouter:
        """The router new requests decide with."""
        return self.served.router

    @property
    def scenarios(self) -> dict[str, Scenario]:
        return self.served.scenarios

    @property
    def default_scenario(self) -> str:
        return self.served.default_scenario

    @property
    def owns_router(self) -> bool:
        """Whether the gateway closes the router it serves (it always closes the routers swapped in)."""
        return self.served.owned

    @owns_router.setter
    def owns_router(self, owned: bool) -> None:
        self.served.owned = owned

    async def aclose(self) -> None:
        if self.capture is not None:  # first: its shadow calls use the backends
            await self.capture.aclose()
        await asyncio.gather(*(backend.aclose() for backend in self.backends.values()), self.fetcher.aclose(), self.stickiness.aclose())
        if self.owns_router:
            await asyncio.to_thread(self.router.close)
        await asyncio.gather(*self._closing)
        if self.decision_log is not None:
            self.decision_log.close()

    # ------------------------------------------------------------------ the served bundle
    def _models(self, router: QueryRouter) -> dict[Route, str]:
        """The model id each backend is called with: the configured one, else the one the bundle was trained for."""
        names = router.model_names()
        models: dict[Route, str] = {}
        for role, spec in (("edge", self.config.edge), ("cloud", self.config.cloud)):
            model = spec.model or names[role]
            if not model:
                raise ConfigError(f"{role}.model is not set and the bundle's manifest names no {role} model")
            models[role] = model
        return models

    def _served(self, router: QueryRouter, *, owned: bool) -> ServedBundle:
        """``router`` checked against the configuration and the backends, ready to serve; ConfigError if it does not fit."""
        scenarios = router.scenarios
        default = self.config.default_scenario or next(iter(scenarios))
        if default not in scenarios:
            raise ConfigError(f"default_scenario {default!r} is not in the bundle; it has: {', '.join(scenarios)}")
        models = self._models(router)
        served = {role: backend.model for role, backend in self.backends.items()}
        if models != served:
            raise ConfigError(f"the bundle was trained for edge {models['edge']!r} and cloud {models['cloud']!r}, "
                              f"but the gateway serves edge {served['edge']!r} and cloud {served['cloud']!r}")
        stats = getattr(router, "stats", None)
        counts = self.metrics.follow(stats) if stats is not None else None
        digest = getattr(router, "digest", None)
        manifest = getattr(getattr(router, "trained", None), "manifest", None)
        return ServedBundle(router, scenarios, default, digest, owned, counts, DriftReference.from_manifest(digest, scenarios, manifest))

    def swap(self, router: QueryRouter) -> ServedBundle:
        """Serve ``router`` (which the gateway then owns) from the next request on; the previous ServedBundle.

        Requests already deciding finish with the previous router, which is closed after the last of them.
        Raises ConfigError, serving the previous router still, when ``router`` does not fit the configuration.
        """
        served, previous = self._served(router, owned=True), self.served
        self.served = served
        self.metrics.serve_bundle(served.digest, previous.digest)
        self.windows.serve(served.drift)
        previous.retired = True
        if not previous.in_flight:
            self._close(previous)
        return previous

    @contextmanager
    def _lease(self) -> Iterator[ServedBundle]:
        """The served bundle, kept open while a request decides with it."""
        served = self.served
        served.in_flight += 1
        try:
            yield served
        finally:
            served.in_flight -= 1
            if served.retired and not served.in_flight:
                self._close(served)

    def _close(self, served: ServedBundle) -> None:
        """Stop following a replaced router's counts and close it in a thread if the gateway owns it."""
        if served.counts is not None:
            self.metrics.unfollow(served.counts)
        if served.owned:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(served.router.close))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            task.add_done_callback(lambda _: refreeze_heap())  # a frozen process releases the closed router

    # ------------------------------------------------------------------ requests
    async def handle(self, body: dict[str, Any], *, scenario_header: str | None = None, mes_header: str | None = None,
                     session_header: str | None = None, capture_header: str | None = None, source_header: str | None = None) -> Reply:
        """Answer one chat-completion request body; raises GatewayError (4xx, 5xx) when it cannot.

        ``mes_header`` (``X-ECVL-MES``) asks for another MES than the scenario's; only a bundle whose router
        predicts scores (``ecvl-multi``) serves it. ``source_header`` (``X-ECVL-Source``) names the query's source, as the
        training data's ``source`` field does, for routers that read it. ``session_header`` (``X-ECVL-Session``) names the conversation. ``capture_header`` (``X-ECVL-Capture``) ``off``
        keeps the request out of the capture; a sampled request's ``outcome.capture`` is to be finished once the client
        has its answer.
        """
        started = time.perf_counter()
        scenario_label = "unknown"
        with self._lease() as served:
            try:
                request = parse_chat_request(
                    body,
                    scenarios=list(served.scenarios),
                    default_scenario=served.default_scenario,
                    scenario_header=scenario_header,
                    limits=self.config.limits,
                )
                scenario_label = request.scenario
                mes = self._requested_mes(served, mes_header, request.scenario)
                source = requested_source(source_header)
                refused = capture_refused(capture_header)
                turn = self.stickiness.turn(request, session_header)
                routed_image = await self._check_images(request)
                decision = await self._decide(served, request, routed_image, mes, source, await self.stickiness.recall(turn))
            except GatewayError:
                self.metrics.requests.labels(scenario_label, "none", "rejected").inc()
                raise
        outcome = Outcome(uuid.uuid4().hex, decision, served.scenarios[decision.scenario], request.stream, len(request.images),
                          started, bundle=served.digest)
        if self.capture is not None:
            image = routed_image[0] if routed_image is not None else None
            outcome.capture = self.capture.sample(request, image, outcome, outcome.scenario, refused)
        if turn.marked is not None:
            strip_markers(request.messages)
        try:
            if request.stream:
                return await self._stream(request, outcome, turn)
            return await self._complete(request, outcome, turn)
        except GatewayError as error:
            self._finish(outcome, error.status)
            raise

    async def _check_images(self, request: ChatRequest) -> tuple[CheckedImage, str] | None:
        """Check every image (URLs are fetched and replaced by data URIs); the last turn's first is routed on."""
        routed = None
        for part in request.images:
            if part.url[:5].lower() == "data:":
                image = decode_data_uri(part.url, part.where, self.config.limits)
            else:
                image = await self.fetcher.fetch(part.url, part.where)
                part.image_url["url"] = image.data_uri()
            if part.last_turn and routed is None:
                routed = (image, part.where)
        return routed

    @staticmethod
    def _requested_mes(served: ServedBundle, header: str | None, scenario: str) -> float | None:
        """The MES of ``X-ECVL-MES``, checked against the router's score scale; None without the header."""
        if header is None:
            return None
        try:
            mes = float(header)
        except ValueError:
            raise bad_request(f"X-ECVL-MES must be a number, not {header!r}", param="X-ECVL-MES") from None
        low, high = served.router.score_scale
        if not low <= mes <= high:
            raise bad_request(f"X-ECVL-MES {mes:g} is outside the score scale [{low:g}, {high:g}]", param="X-ECVL-MES")
        if mes != served.scenarios[scenario].mes and not served.router.serves_any_mes:
            raise bad_request(f"this router was trained at MES {served.scenarios[scenario].mes:g} only; serving another MES "
                              "needs an ecvl-multi bundle", param="X-ECVL-MES", code="mes_not_served")
        return mes

    async def _decide(self, served: ServedBundle, request: ChatRequest, routed_image: tuple[CheckedImage, str] | None,
                      mes: float | None, source: str | None, kept: Route | None) -> Decision:
        """The route of ``request``: ``kept`` (its conversation's) where its scenario allows it, else the router's."""
        scenario = served.scenarios[request.scenario]
        if kept is not None and (kept == "edge" or scenario.cloud_allowed):
            return Decision(kept, None, served.router.tau(scenario.name), scenario.name, 0.0, sticky=True, batch_size=0)

        image = partial(routed_image[0].decode, routed_image[1]) if routed_image else None  # decoded in the batch
        decision = await asyncio.wrap_future(served.router.submit(request.question, image, scenario.name, mes=mes, source=source))
        if served.counts is not None:
            served.counts.sync()
        self.metrics.decision_seconds.labels(scenario.name).observe(decision.router_ms / 1000)
        if not scenario.cloud_allowed and decision.route == "cloud":  # trained so that it cannot happen (tau 0)
            decision = replace(decision, route="edge")
        self.windows.observe(served.digest, decision)
        return decision

    def _plan(self, outcome: Outcome) -> list[Route]:
        """The backends to try, in order."""
        decision = outcome.decision
        if not outcome.scenario.cloud_allowed:
            return ["edge"]
        if decision.route == "edge":
            return ["edge", "cloud"] if self.config.fallback.edge_to_cloud else ["edge"]
        return ["cloud", "edge"] if self.config.fallback.cloud_to_edge else ["cloud"]

    async def _complete(self, request: ChatRequest, outcome: Outcome, turn: Turn) -> Reply:
        for route in self._plan(outcome):
            backend = self.backends[route]
            called = time.perf_counter()
            try:
                document, attempts = await backend.complete(backend.payload(request.body))
            except CallError as error:
                self._failed(outcome, route, error, called)
                if passed_through(error):
                    raise self._rejected(route, error) from None
                continue
            self._answered(outcome, route, attempts, called, document.get("model"))
            messages = [choice["message"] for choice in document["choices"] if isinstance(choice, dict) and isinstance(choice.get("message"), dict)]
            if self.config.stickiness.marks(route):
                for message in messages:
                    if isinstance(message.get("content"), str) or message.get("content") is None:
                        message["content"] = mark(message.get("content"), route)
            await self.stickiness.remember(turn, route, messages)
            if outcome.capture is not None:
                outcome.capture.document = document
            document["ecvl"] = outcome.ecvl()
            self._finish(outcome, 200)
            return Reply(outcome, body=document)
        raise self._unavailable(outcome)

    async def _stream(self, request: ChatRequest, outcome: Outcome, turn: Turn) -> Reply:
        for route in self._plan(outcome):
            backend = self.backends[route]
            called = time.perf_counter()
            try:
                response, attempts = await backend.open_stream(backend.payload(request.body))
            except CallError as error:
                self._failed(outcome, route, error, called)
                if passed_through(error):
                    raise self._rejected(route, error) from None
                continue
            self._answered(outcome, route, attempts, called, backend.model)
            marker = MARKERS[route] if self.config.stickiness.marks(route) else None
            if not turn.key.needs_answers:
                await self.stickiness.remember(turn, route)
            return Reply(outcome, chunks=self._relay(response, outcome, marker, turn))
        raise self._unavailable(outcome)

    async def _relay(self, response: httpx.Response, outcome: Outcome, marker: str | None, turn: Turn) -> AsyncIterator[bytes]:
        """The backend's SSE stream, byte for byte, except that the first event gains ``ecvl`` (and the marker).

        When ``turn``'s key needs the answer, the route is kept once the answer is complete: before the closing
        ``[DONE]`` is passed on, so that the client's next turn finds it.
        """
        route = outcome.route
        assert route is not None
        annotator = _StreamAnnotator(outcome.ecvl(), marker)
        transcript = AnswerTranscript() if turn.key.needs_answers else None
        status = 200
        tap = outcome.capture
        if tap is not None:
            tap.stream_began()
        try:
            async for chunk in response.aiter_bytes():
                if tap is not None:
                    tap.chunks.append(chunk)
                out = chunk if annotator.done else annotator.feed(chunk)
                if transcript is not None and transcript.feed(out):
                    await self.stickiness.remember(turn, route, transcript.messages())
                    transcript = None
                yield out
            rest = b"" if annotator.done else annotator.pending
            if transcript is not None:  # the stream ended without [DONE]
                transcript.feed(rest)
                await self.stickiness.remember(turn, route, transcript.messages())
            if rest:
                yield rest
            if tap is not None:
                tap.stream_completed()
        except httpx.HTTPError as exc:
            status = 502
            outcome.errors.append({"route": outcome.route, "kind": "stream_interrupted", "status": None})
            logger.warning("%s backend stream broke off: %s", outcome.route, type(exc).__name__)
            error = GatewayError(502, f"the {outcome.route} backend's stream broke off ({type(exc).__name__})", type="server_error", code="upstream_stream_error")
            yield b"data: " + json.dumps(error.body()).encode() + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status = CLIENT_CLOSED
            raise
        finally:
            self._finish(outcome, status)
            await response.aclose()

    # ------------------------------------------------------------------ bookkeeping
    def _failed(self, outcome: Outcome, route: Route, error: CallError, called: float) -> None:
        outcome.attempts[route] = error.attempts
        outcome.errors.append({"route": route, "kind": error.kind, "status": error.status, "message": error.message})
        self.metrics.backend_seconds.labels(route, "error").observe(elapsed_ms(called) / 1000)
        plan = self._plan(outcome)
        position = plan.index(route)
        if position + 1 < len(plan) and not passed_through(error):
            self.metrics.fallbacks.labels(route, plan[position + 1], error.kind).inc()
            logger.warning("%s backend failed after %d attempt(s) (%s); falling back to %s", route, error.attempts, error.message, plan[position + 1])
        else:
            logger.warning("%s backend failed after %d attempt(s) (%s)", route, error.attempts, error.message)

    def _answered(self, outcome: Outcome, route: Route, attempts: int, called: float, model: Any) -> None:
        outcome.route = route
        outcome.fallback = route != outcome.decision.route
        outcome.attempts[route] = attempts
        outcome.model = model if isinstance(model, str) else self.backends[route].model
        outcome.backend_ms = elapsed_ms(called)
        self.metrics.backend_seconds.labels(route, "ok").observe(outcome.backend_ms / 1000)

    @staticmethod
    def _rejected(route: Route, error: CallError) -> GatewayError:
        """A backend's 4xx passed on to the client, with the backend's (redacted) message."""
        assert error.status is not None
        return GatewayError(error.status, f"the {route} backend rejected the request ({error.message})", code="upstream_rejected")

    def _unavailable(self, outcome: Outcome) -> GatewayError:
        """The error when every backend of the plan failed."""
        scenario = outcome.scenario
        tried = "; ".join(f"{e['route']}: {e['message']}" for e in outcome.errors)
        if not scenario.cloud_allowed:
            return GatewayError(
                503,
                f"the edge backend could not answer ({tried}), and scenario {scenario.name!r} does not allow the "
                "cloud (cloud_allowed: false), so the request was not sent anywhere else",
                type="server_error",
                code="edge_unavailable",
            )
        if all(e["kind"] == "timeout" for e in outcome.errors):
            return GatewayError(504, f"no backend answered in time ({tried})", type="server_error", code="upstream_timeout")
        return GatewayError(502, f"no backend could answer ({tried})", type="server_error", code="upstream_unavailable")

    def _finish(self, outcome: Outcome, status: int) -> None:
        """Count the request and write its decision-log record."""
        d = outcome.decision
        answered = outcome.route if status < 400 or status == CLIENT_CLOSED else None
        if status == CLIENT_CLOSED:
            result = "client_closed"
        else:
            result = "failed" if status >= 500 else "rejected" if status >= 400 else "fallback" if outcome.fallback else "ok"
        self.metrics.requests.labels(d.scenario, answered or "none", result).inc()
        if self.decision_log is None:
            return
        self.decision_log.write(
            {
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "request_id": outcome.request_id,
                "scenario": d.scenario,
                "decision": d.route,
                "p": d.p,
                "tau": d.tau,
                "sticky": d.sticky,
                "route": answered,
                "model": outcome.model,
                "fallback": outcome.fallback,
                "status": status,
                "stream": outcome.stream,
                "images": outcome.images,
                "router_ms": round(d.router_ms, 3),
                "backend_ms": None if outcome.backend_ms is None else round(outcome.backend_ms, 3),
                "total_ms": round(elapsed_ms(outcome.started), 3),
                "attempts": outcome.attempts,
                "backend_errors": [{"route": e["route"], "kind": e["kind"], "status": e["status"]} for e in outcome.errors],
            }
        )

    # ------------------------------------------------------------------ service endpoints
    def models(self) -> list[dict[str, Any]]:
        """The served model ids: ``ecvl-router`` (the default scenario) and one per scenario."""
        created, served = int(time.time()), self.served
        entries = [self._model_entry(served, SERVED_MODEL, served.default_scenario, created)]
        entries += [self._model_entry(served, f"{SERVED_MODEL}:{name}", name, created) for name in served.scenarios]
        return entries

    def _model_entry(self, served: ServedBundle, model_id: str, scenario: str, created: int) -> dict[str, Any]:
        s = served.scenarios[scenario]
        return {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": SERVED_MODEL,
            "ecvl": {
                "scenario": s.name,
                "tau": served.router.tau(s.name),
                "mes": s.mes,
                "any_mes": served.router.serves_any_mes,
                "promise": s.promise(),
                "cloud_allowed": s.cloud_allowed,
                "description": s.description,
                "edge_model": self.backends["edge"].model,
                "cloud_model": self.backends["cloud"].model,
                "bundle": served.digest,
            },
        }

    async def readiness(self) -> dict[str, Any]:
        """Whether the bundle is loaded and each backend answers HTTP."""
        problems = await asyncio.gather(*(backend.reachable() for backend in self.backends.values()))
        backends = {role: problem or "reachable" for role, problem in zip(self.backends, problems)}
        return {
            "ready": not any(problems),
            "bundle": str(self.config.bundle),
            "bundle_hash": self.served.digest,
            "scenarios": list(self.scenarios),
            "backends": backends,
        }


class _StreamAnnotator:
    """Rewrites the first SSE data event of a stream (``ecvl`` object) and, if given a marker, the first delta."""

    def __init__(self, ecvl: dict[str, Any], marker: str | None) -> None:
        self.ecvl = ecvl
        self.marker = marker
        self.pending = b""
        self._annotated = False
        self._marker_placed = marker is None

    @property
    def done(self) -> bool:
        return self._annotated and self._marker_placed

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send now for ``chunk``: rewritten complete events, the rest kept back until complete."""
        self.pending += chunk
        out = bytearray()
        while not self.done:
            end = EVENT_END.search(self.pending)
            if end is None:
                return bytes(out)
            event, self.pending = self.pending[: end.end()], self.pending[end.end() :]
            out += self._rewrite(event)
        out += self.pending
        self.pending = b""
        return bytes(out)

    def _rewrite(self, event: bytes) -> bytes:
        lines = event.strip().splitlines()
        data = [line for line in lines if line.startswith(b"data:")]
        if len(data) != 1 or data[0][5:].strip() == b"[DONE]":
            return event
        try:
            document = json.loads(data[0][5:])
        except ValueError:
            return event
        if not isinstance(document, dict):
            return event
        if not self._annotated:
            document["ecvl"] = self.ecvl
            self._annotated = True
        if not self._marker_placed:
            choices = document.get("choices")
            delta = choices[0].get("delta") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
            if isinstance(delta, dict) and self.marker is not None:
                delta["content"] = self.marker + (delta.get("content") or "")
                self._marker_placed = True
        rest = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*rest, b"data: " + json.dumps(document, ensure_ascii=False).encode()]) + b"\n\n"
