"""Figures rendered with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecvl_router.data.rsd import PairView
from ecvl_router.metrics import decisions_at, routing_metrics
from ecvl_router.scenarios import Scenario


def pyplot():
    """matplotlib's pyplot on the Agg backend (imported on first use, not at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, *, dpi: int = 110) -> Path:
    """Write ``figure`` as PNG to ``path`` and release it."""
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return Path(path)


def threshold_sensitivity_figure(
    probabilities: Mapping[str, Mapping[str, np.ndarray]],
    chosen_tau: Mapping[str, Mapping[str, float]],
    view: PairView,
    scenarios: Sequence[Scenario],
    grid: np.ndarray,
    path: Path,
    *,
    title: str,
) -> Path:
    """The τ-sensitivity figure (paper Figure 2): APSP, CA, AIL and RCS per scenario against τ for each router.

    ``probabilities[router][scenario]`` are the router's test-set P(edge competent) with that scenario's
    weights; the APSP/CA/AIL panels use the first scenario's. ``chosen_tau[router][scenario]`` (picked on
    validation) is marked on each RCS curve.
    """
    plt = pyplot()
    first = scenarios[0]
    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    for router, by_scenario in probabilities.items():
        base = routing_metrics(decisions_at(by_scenario[first.name], grid), view.score_edge, view.score_cloud,
                               view.latency_edge, view.latency_cloud, first)
        (line,) = axes[0, 0].plot(grid, base["apsp"], marker=".", label=router)
        axes[0, 1].plot(grid, base["ca"], marker=".", color=line.get_color())
        axes[0, 2].plot(grid, base["ail"], marker=".", color=line.get_color())
        for ax, scenario in zip(axes[1], scenarios):
            curve = routing_metrics(decisions_at(by_scenario[scenario.name], grid), view.score_edge, view.score_cloud,
                                    view.latency_edge, view.latency_cloud, scenario)["rcs"]
            ax.plot(grid, curve, color=line.get_color())
            tau = chosen_tau[router][scenario.name]
            index = int(np.argmin(np.abs(grid - tau)))
            ax.plot([grid[index]], [curve[index]], marker="*", markersize=13, color=line.get_color(), markeredgecolor="black")
    labels = [("APSP ↑", "(a.1) APSP vs τ"), ("CA ↑ (share on edge)", "(a.2) CA vs τ"), ("AIL [s] ↓", "(a.3) AIL vs τ")]
    for ax, (ylabel, heading) in zip(axes[0], labels):
        ax.set(xlabel="decision threshold τ", ylabel=ylabel, title=f"{heading} ({first.name} weights)")
    for number, (ax, scenario) in enumerate(zip(axes[1], scenarios), start=1):
        ax.set(xlabel="decision threshold τ", ylabel=f"RCS ({scenario.name})",
               title=f"(b.{number}) RCS {scenario.name} (α {scenario.alpha:g}, β {scenario.beta:g}, γ {scenario.gamma:g})")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(f"{title} — ★ marks each router's τ* chosen on validation")
    return save_figure(figure, path)
