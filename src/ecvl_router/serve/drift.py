"""Drift on ``/metrics``: the p of the gateway's last router decisions against what its bundle saw held out.

Each process keeps, per scenario, the last ``drift.window`` router decisions (a conversation's kept route is
no decision of the router and is left out) in a ring buffer, and mirrors the buffer's counts into two
``livesum`` gauges labelled by bundle: decisions per bin of p (``P_BINS``) and edge decisions. Under
``serve --workers`` the gauges of every live worker add up, so each scrape sees the union of the live
workers' windows of the bundle it serves; from them it derives the window's edge share and the PSI of its p
against the bundle's ``p_reference`` (``learning/drift.py``), next to the validation edge share the bundle
records. A new bundle starts with empty windows: the gauges of the bundle it replaces go back to 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from ecvl_router.learning.drift import P_BINS, population_stability_index, validation_edge_share

if TYPE_CHECKING:
    from ecvl_router.serve.routing import Decision

WINDOW_BINS = "ecvl_router_drift_window_bins"
WINDOW_EDGE = "ecvl_router_drift_window_edge"
WINDOW_FAMILIES = (WINDOW_BINS, WINDOW_EDGE)
"""The stored window counts: combined into the derived metrics at each scrape, not shown themselves."""
NO_BUNDLE = "none"
"""The bundle label of a router that was not loaded from a bundle (it has no content hash)."""


def bin_index(p: float) -> int:
    """The bin of ``P_BINS`` that ``p`` falls in (the last bin closed, values outside [0, 1] clipped in)."""
    return int(min(max(np.searchsorted(P_BINS, p, side="right") - 1, 0), len(P_BINS) - 2))


@dataclass(frozen=True)
class DriftReference:
    """What one bundle saw on held-out queries, per scenario: the counts of p over ``P_BINS`` (absent where the
    manifest records none) and the validation edge share."""

    bundle: str
    p_counts: dict[str, np.ndarray]
    edge_share: dict[str, float]

    @classmethod
    def from_manifest(cls, bundle: str | None, scenarios: Iterable[str], manifest: Mapping[str, Any] | None) -> DriftReference:
        manifest = manifest or {}
        recorded = manifest.get("p_reference") or {}
        counts = {name: np.asarray(recorded[name]["counts"], dtype=np.float64) for name in scenarios
                  if name in recorded and list(recorded[name].get("bins", [])) == P_BINS.tolist()}
        return cls(bundle or NO_BUNDLE, counts, {name: validation_edge_share(manifest, name) for name in scenarios})


@dataclass
class DecisionWindows:
    """This process's last ``size`` router decisions per scenario of the served bundle, mirrored into the gauges."""

    size: int
    p: Histogram
    bins: Gauge
    edge: Gauge
    reference: DriftReference | None = None
    _windows: dict[str, deque[tuple[int, bool]]] = field(default_factory=dict)

    def serve(self, reference: DriftReference) -> None:
        """Start empty windows for a new bundle; the gauges of the one it replaces go back to 0."""
        if self.reference is not None and self.reference.bundle != reference.bundle:
            for scenario in self._windows:
                for index in range(len(P_BINS) - 1):
                    self.bins.labels(self.reference.bundle, scenario, str(index)).set(0)
                self.edge.labels(self.reference.bundle, scenario).set(0)
        self.reference = reference
        self._windows = {}

    def observe(self, bundle: str | None, decision: Decision) -> None:
        """Count a router decision made with ``bundle`` in the histogram of p, and add it to its scenario's window
        (unless the bundle is no longer served)."""
        if decision.p is None:
            return
        self.p.labels(decision.scenario, bundle or NO_BUNDLE).observe(decision.p)
        reference = self.reference
        if reference is None or (bundle or NO_BUNDLE) != reference.bundle:
            return
        window = self._windows.setdefault(decision.scenario, deque())
        if len(window) == self.size:
            self._count(reference.bundle, decision.scenario, *window.popleft(), -1)
        entry = (bin_index(decision.p), decision.route == "edge")
        window.append(entry)
        self._count(reference.bundle, decision.scenario, *entry, 1)

    def _count(self, bundle: str, scenario: str, index: int, edge: bool, step: int) -> None:
        self.bins.labels(bundle, scenario, str(index)).inc(step)
        if edge:
            self.edge.labels(bundle, scenario).inc(step)


def drift_families(families: Iterable[Metric], reference: DriftReference | None) -> Iterator[Metric]:
    """The drift metrics derived from the stored window counts in ``families`` for the bundle of ``reference``."""
    decisions = GaugeMetricFamily("ecvl_router_drift_window_decisions",
                                  "Router decisions in the live processes' windows of the served bundle", labels=["scenario"])
    share = GaugeMetricFamily("ecvl_router_drift_edge_share",
                              "Share of the window's router decisions that went to the edge (NaN: empty window)", labels=["scenario"])
    validation = GaugeMetricFamily("ecvl_router_drift_validation_edge_share",
                                   "Edge share of the served bundle on its validation queries", labels=["scenario"])
    psi = GaugeMetricFamily("ecvl_router_drift_psi",
                            "Population stability index of the window's p against the bundle's held-out p (NaN: empty window)",
                            labels=["scenario"])
    if reference is not None:
        counts, edges = _window_counts(families, reference.bundle)
        for scenario, expected in reference.edge_share.items():
            live = counts.get(scenario, np.zeros(len(P_BINS) - 1))
            total = float(live.sum())
            decisions.add_metric([scenario], total)
            share.add_metric([scenario], edges.get(scenario, 0.0) / total if total else float("nan"))
            validation.add_metric([scenario], expected)
            if scenario in reference.p_counts:
                psi.add_metric([scenario], population_stability_index(reference.p_counts[scenario], live))
    yield from (decisions, share, validation, psi)


def _window_counts(families: Iterable[Metric], bundle: str) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The window counts of ``bundle`` summed over the processes: per scenario, decisions by bin and edge decisions."""
    counts: dict[str, np.ndarray] = {}
    edges: dict[str, float] = {}
    for family in families:
        if family.name not in WINDOW_FAMILIES:
            continue
        for sample in family.samples:
            if sample.labels.get("bundle") != bundle:
                continue
            scenario = sample.labels["scenario"]
            if family.name == WINDOW_BINS:
                counts.setdefault(scenario, np.zeros(len(P_BINS) - 1))[int(sample.labels["bin"])] += sample.value
            else:
                edges[scenario] = edges.get(scenario, 0.0) + sample.value
    return counts, edges
