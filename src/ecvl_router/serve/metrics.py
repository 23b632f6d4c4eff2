"""Prometheus metrics of one gateway: in a registry of its own, or summed over the worker processes of a service.

A lone process (``ecvl-router serve``) keeps its metrics in a registry of its own, so several gateways may share
a process. Under ``serve --workers N`` every worker writes its values to the service's multiprocess folder
(prometheus-client's multiprocess mode) and ``/metrics`` of any worker shows the whole service: counters and
histograms summed over every worker that ever served, the gauges by the mode each declares. Shares (the edge
share, the cache hit rate) are not kept as gauges: each scrape derives them from the summed counters, and the
drift metrics from the live workers' windows of recent decisions (``serve/drift.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ecvl_router.learning.drift import P_BINS
from ecvl_router.serve.drift import WINDOW_BINS, WINDOW_EDGE, WINDOW_FAMILIES, DecisionWindows, DriftReference, drift_families

if TYPE_CHECKING:
    from ecvl_router.serve.routing import RouterStats

_DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
_BACKEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_ANSWERED = ("edge", "cloud")


class GatewayMetrics:
    """Requests by scenario, route and outcome; decision and backend latency; fallbacks; conversation lookups and
    route-store outages; decision batch sizes; embedding-cache lookups and bytes; the bundles served and their
    reloads; the router's p; the edge share, the cache hit rate and the drift of the recent decisions derived at
    each scrape.

    ``multiprocess_dir``: the service's prometheus multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``, set
    before prometheus-client was first imported); ``exposition`` then shows every process writing there.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set; "
                               "a worker's metrics would stay in its own memory")
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
        self.batch_sizes = Histogram(
            "ecvl_router_decision_batch_size", "Routing decisions per batch of the encoders and router",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )
        self.cache_hits = Counter(
            "ecvl_router_embedding_cache_hits", "Embedding-cache lookups that found the vector", ["encoder"], registry=self.registry
        )
        self.cache_misses = Counter(
            "ecvl_router_embedding_cache_misses", "Embedding-cache lookups that did not", ["encoder"], registry=self.registry
        )
        self.cache_bytes = Gauge(
            "ecvl_router_embedding_cache_bytes", "Bytes of vectors held by the embedding caches of the live processes",
            multiprocess_mode="livesum", registry=self.registry,
        )
        self.serving = Gauge(
            "ecvl_router_serving_processes", "Live gateway processes serving each bundle (by its content hash)",
            ["bundle"], multiprocess_mode="livesum", registry=self.registry,
        )
        self.reloads = Counter(
            "ecvl_router_bundle_reloads", "Bundle reloads by outcome (loaded, refused), counted in each process",
            ["outcome"], registry=self.registry,
        )
        self.p = Histogram(
            "ecvl_router_p", "The router's P(edge competent) of its decisions, by scenario and bundle (content hash)",
            ["scenario", "bundle"], buckets=tuple(P_BINS[1:].tolist()), registry=self.registry,
        )
        self.drift_bins = Gauge(
            WINDOW_BINS, "Decisions of the drift windows by bin of p (combined at each scrape, not shown)",
            ["bundle", "scenario", "bin"], multiprocess_mode="livesum", registry=self.registry,
        )
        self.drift_edge = Gauge(
            WINDOW_EDGE, "Edge decisions of the drift windows (combined at each scrape, not shown)",
            ["bundle", "scenario"], multiprocess_mode="livesum", registry=self.registry,
        )
        self.windows: DecisionWindows | None = None
        self._followed: list[RouterCounts] = []
        source = self.registry.collect if multiprocess_dir is None else MultiProcessCollector(None, str(multiprocess_dir)).collect
        self._scraped = CollectorRegistry(auto_describe=False)
        self._scraped.register(_WithShares(source, self._drift_reference))

    def watch_drift(self, size: int) -> DecisionWindows:
        """Keep this process's last ``size`` router decisions per scenario for the drift metrics (``serve/drift.py``)."""
        self.windows = DecisionWindows(size, self.p, self.drift_bins, self.drift_edge)
        return self.windows

    def _drift_reference(self) -> DriftReference | None:
        return self.windows.reference if self.windows is not None else None

    def follow(self, stats: Callable[[], RouterStats]) -> RouterCounts:
        """Start copying a router's counts (read by ``stats``) into these metrics; see :class:`RouterCounts`."""
        counts = RouterCounts(self, stats)
        self._followed.append(counts)
        counts.sync()
        return counts

    def unfollow(self, counts: RouterCounts) -> None:
        """Copy a router's last counts and stop following it (it is closed)."""
        counts.sync()
        self._followed.remove(counts)

    def serve_bundle(self, digest: str | None, previous: str | None = None) -> None:
        """Record that this process serves bundle ``digest`` (None: one without a hash) instead of ``previous``."""
        if previous is not None:
            self.serving.labels(previous).set(0)
        if digest is not None:
            self.serving.labels(digest).set(1)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (this process's routers' counts copied first)."""
        for counts in self._followed:
            counts.sync()
        return generate_latest(self._scraped)


class RouterCounts:
    """One router's counts (batches by size, cache lookups by encoder, cache bytes), copied into the metrics.

    The router keeps them in memory; ``sync`` adds what grew since the last call to the Prometheus metrics, so
    that they reach the multiprocess files too. The gateway syncs after each decision and before each scrape.
    """

    def __init__(self, metrics: GatewayMetrics, stats: Callable[[], RouterStats]) -> None:
        self.metrics = metrics
        self.stats = stats
        self._batches: dict[int, int] = {}
        self._lookups: dict[str, tuple[int, int]] = {}

    def sync(self) -> None:
        stats = self.stats()
        for size, count in stats.batch_sizes.items():
            for _ in range(count - self._batches.get(size, 0)):
                self.metrics.batch_sizes.observe(size)
        self._batches = dict(stats.batch_sizes)
        for encoder, counts in stats.cache.items():
            hits, misses = self._lookups.get(encoder, (0, 0))
            self.metrics.cache_hits.labels(encoder).inc(counts.hits - hits)
            self.metrics.cache_misses.labels(encoder).inc(counts.misses - misses)
            self._lookups[encoder] = (counts.hits, counts.misses)
        self.metrics.cache_bytes.set(stats.cache_bytes)


class _WithShares(Collector):
    """The metrics of ``source``, followed by the shares derived from their counters and the drift of the windows
    of the bundle ``reference`` names (the windows' own counts are not shown)."""

    def __init__(self, source: Callable[[], Iterable[Metric]], reference: Callable[[], DriftReference | None]) -> None:
        self.source = source
        self.reference = reference

    def collect(self) -> Iterator[Metric]:
        families = list(self.source())
        yield from (family for family in families if family.name not in WINDOW_FAMILIES)
        yield from drift_families(families, self.reference())
        totals = _totals(families)
        answered = {route: sum(value for labels, value in totals["ecvl_router_requests_total"] if labels.get("route") == route)
                    for route in _ANSWERED}
        share = answered["edge"] / sum(answered.values()) if sum(answered.values()) else 0.0
        yield GaugeMetricFamily("ecvl_router_edge_share", "Share of answered requests the edge answered", value=share)
        rate = GaugeMetricFamily("ecvl_router_embedding_cache_hit_rate", "Share of embedding-cache lookups that hit", labels=["encoder"])
        lookups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for position, name in enumerate(("ecvl_router_embedding_cache_hits_total", "ecvl_router_embedding_cache_misses_total")):
            for labels, value in totals[name]:
                lookups[labels["encoder"]][position] += value
        for encoder, (hits, misses) in sorted(lookups.items()):
            rate.add_metric([encoder], hits / (hits + misses) if hits + misses else 0.0)
        yield rate


def _totals(families: Iterable[Metric]) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples of ``families`` by sample name: (labels, value) pairs."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in families:
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples
