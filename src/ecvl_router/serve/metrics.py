"""Prometheus metrics of one gateway, in a registry of its own (several gateways may share a process)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ecvl_router.serve.routing import RouterStats

_DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
_BACKEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class GatewayMetrics:
    """Requests by scenario, route and outcome; decision and backend latency; fallbacks; conversation lookups and
    route-store outages; the edge share; and,
    given the router's ``stats``, decision batch sizes and the embedding cache's hits, misses and hit rate."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, router_stats: Callable[[], RouterStats] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if router_stats is not None:
            self.registry.register(_RouterCollector(router_stats))
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
        self.conversation_lookups = Counter(
            "ecvl_router_conversation_lookups",
            "Lookups of a conversation's kept route, by key (header, metadata, user, history, marker) and result",
            ["key", "result"],
            registry=self.registry,
        )
        self.route_store_unavailable = Counter(
            "ecvl_router_route_store_unavailable",
            "Route-store operations (lookup, store) that failed or were skipped while it was down: turns routed without stickiness",
            ["operation"],
            registry=self.registry,
        )
        self.edge_share = Gauge(
            "ecvl_router_edge_share", "Share of answered requests the edge answered", registry=self.registry
        )
        self._answered = {"edge": 0, "cloud": 0}

    def name_worker(self, index: int) -> None:
        """Label these metrics as worker ``index``'s (``ecvl-router serve --workers``): ``ecvl_router_worker{worker, pid} 1``."""
        worker = Gauge("ecvl_router_worker", "This process's worker index and pid", ["worker", "pid"], registry=self.registry)
        worker.labels(str(index), str(os.getpid())).set(1)

    def answered(self, route: str) -> None:
        """Count an answer by ``route`` and update the edge share."""
        self._answered[route] += 1
        self.edge_share.set(self._answered["edge"] / (self._answered["edge"] + self._answered["cloud"]))

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class _RouterCollector(Collector):
    """Batch sizes and embedding-cache counts, read from the router at scrape time."""

    def __init__(self, stats: Callable[[], RouterStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        sizes = stats.batch_sizes
        buckets = [(str(bound), sum(n for size, n in sizes.items() if size <= bound)) for bound in _BATCH_BUCKETS]
        batches = HistogramMetricFamily("ecvl_router_decision_batch_size", "Routing decisions per batch of the encoders and router")
        batches.add_metric([], [*buckets, ("+Inf", sum(sizes.values()))], sum_value=sum(size * n for size, n in sizes.items()))
        yield batches
        hits = CounterMetricFamily("ecvl_router_embedding_cache_hits", "Embedding-cache lookups that found the vector", labels=["encoder"])
        misses = CounterMetricFamily("ecvl_router_embedding_cache_misses", "Embedding-cache lookups that did not", labels=["encoder"])
        rate = GaugeMetricFamily("ecvl_router_embedding_cache_hit_rate", "Share of embedding-cache lookups that hit", labels=["encoder"])
        for encoder, counts in stats.cache.items():
            hits.add_metric([encoder], counts.hits)
            misses.add_metric([encoder], counts.misses)
            rate.add_metric([encoder], counts.hit_rate)
        yield from (hits, misses, rate)
        yield GaugeMetricFamily("ecvl_router_embedding_cache_bytes", "Bytes of vectors held by the embedding cache", value=stats.cache_bytes)
