"""Multi-turn routing: a conversation stays on the backend that answered its first turn.

Each turn's conversation is found by its key (``conversation_keys``), or, with ``stickiness.markers``, by
the invisible marker of an earlier answer (``conversation``). A kept route is looked up before the decision
and kept again after the answer, in the route store (``route_store``). A store that fails costs the request
its stickiness, not its answer: the turn is routed on its own, ``ecvl_router_route_store_unavailable_total``
counts it, and a warning says so at most once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ecvl_router.serve.chat import ChatRequest
from ecvl_router.serve.config import StickinessPolicy
from ecvl_router.serve.conversation import Route, first_route
from ecvl_router.serve.conversation_keys import ConversationKey, conversation_key
from ecvl_router.serve.metrics import GatewayMetrics
from ecvl_router.serve.route_store import RouteStore, RouteStoreUnavailable, route_store

logger = logging.getLogger(__name__)

WARNING_INTERVAL_S = 60.0
"""The store's failures are logged at most this often (with the count of requests they cost)."""


@dataclass
class Turn:
    """One request's place in its conversation: its key, and the route found for it (None: a new conversation)."""

    key: ConversationKey
    marked: Route | None = None
    kept: Route | None = None


class Stickiness:
    """Finds and keeps conversations' routes for a gateway (see the module docstring); ``aclose`` closes the store."""

    def __init__(self, policy: StickinessPolicy, metrics: GatewayMetrics, store: RouteStore | None = None) -> None:
        self.policy = policy
        self.metrics = metrics
        self.store = store if store is not None else route_store(policy)
        self._lost = 0  # requests that lost stickiness since the last warning
        self._next_warning = 0.0
        self._failing = False

    def turn(self, request: ChatRequest, session_header: str | None) -> Turn:
        """The key (and the marker) of ``request``'s conversation; read before the gateway rewrites any message."""
        key = conversation_key(request.body, session_header, self.policy.keys)
        return Turn(key, first_route(request.messages) if self.policy.markers else None)

    async def recall(self, turn: Turn) -> Route | None:
        """The route that keeps ``turn``'s conversation (None: route it on its own); also set as ``turn.kept``."""
        if turn.marked is not None and self.policy.sticky(turn.marked):
            self.metrics.conversation_lookups.labels("marker", "hit").inc()
            turn.kept = turn.marked
            return turn.kept
        if turn.key.lookup is None:
            return None
        source = str(turn.key.source)
        try:
            route = await self.store.get(turn.key.lookup)
        except RouteStoreUnavailable as error:
            self.metrics.conversation_lookups.labels(source, "unavailable").inc()
            self._unavailable("lookup", error)
            return None
        self._available()
        turn.kept = route if route is not None and self.policy.sticky(route) else None
        self.metrics.conversation_lookups.labels(source, "miss" if turn.kept is None else "hit").inc()
        return turn.kept

    async def remember(self, turn: Turn, answered: Route, answers: Sequence[dict[str, Any]] = ()) -> None:
        """Keep the conversation's route (the one found, else ``answered``) for the next turn, given this turn's answers."""
        route = turn.kept or answered
        keys = turn.key.after(answers) if self.policy.sticky(route) else []
        if not keys:
            return
        try:
            await self.store.set(keys, route)
        except RouteStoreUnavailable as error:
            self._unavailable("store", error)
            return
        self._available()

    async def aclose(self) -> None:
        await self.store.aclose()

    def _unavailable(self, operation: str, error: RouteStoreUnavailable) -> None:
        self.metrics.route_store_unavailable.labels(operation).inc()
        self._lost += 1
        self._failing = True
        now = time.monotonic()
        if now >= self._next_warning:
            logger.warning("the route store is unavailable (%s); routing without stickiness (%d store operation(s) failed "
                           "or skipped since the last report; the next in %g s at the earliest)", error, self._lost, WARNING_INTERVAL_S)
            self._lost = 0
            self._next_warning = now + WARNING_INTERVAL_S

    def _available(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("the route store answers again; conversations are sticky again")
