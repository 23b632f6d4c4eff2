"""Prometheus metrics of one gateway, in a registry of its own (several gateways may share a process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
_BACKEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    """Requests by scenario, route and outcome; decision and backend latency; fallbacks; the edge share."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ecvl_router_requests",
            "Chat requests by scenario, the route that answered (none: no backend did) and outcome",
            ["scenario", "route", "outcome"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "ecvl_router_decision_seconds",
            "Routing decision time (features and router), by scenario",
            ["scenario"],
            buckets=_DECISION_BUCKETS,
            registry=self.registry,
        )
        self.backend_seconds = Histogram(
            "ecvl_router_backend_seconds",
            "Backend call time (whole answer, or until the stream opened), retries included",
            ["route", "outcome"],
            buckets=_BACKEND_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "ecvl_router_fallbacks",
            "Requests answered by the other backend after the chosen one failed",
            ["from_route", "to_route", "reason"],
            registry=self.registry,
        )
        self.edge_share = Gauge(
            "ecvl_router_edge_share", "Share of answered requests the edge answered", registry=self.registry
        )
        self._answered = {"edge": 0, "cloud": 0}

    def answered(self, route: str) -> None:
        """Count an answer by ``route`` and update the edge share."""
        self._answered[route] += 1
        self.edge_share.set(self._answered["edge"] / (self._answered["edge"] + self._answered["cloud"]))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
