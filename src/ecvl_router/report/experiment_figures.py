"""Figures 8, 9, 11 and 12 of the paper: model-pair radar, validation–test alignment, MES risk map and MES sweep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecvl_router.experiments.mes_sweep import HIGH_RISK_FAILURE, SAFE_FAILURE
from ecvl_router.experiments.model_pairs import ail_divisor
from ecvl_router.experiments.validation_alignment import AlignmentCurve
from ecvl_router.report.figures import pyplot, save_figure
from ecvl_router.scenarios import Scenario

RADAR_STYLE = {
    "ecvl": {"color": "#2CA02C", "linestyle": "-"},
    "all-large": {"color": "#D62728", "linestyle": "--"},
    "all-small": {"color": "#9467BD", "linestyle": ":"},
}
BAND_COLOURS = {"safe": "#B7E4B7", "caution": "#FFE8A3", "high risk": "#F7B6B2"}


def pair_radar(profiles: pd.DataFrame, scenarios: Sequence[Scenario], path: Path) -> Path:
    """Figure 8: one radar per pair over APSP, RCS per scenario, CA and AIL/d for each router of ``profiles``."""
    plt = pyplot()
    pairs = list(dict.fromkeys(profiles["pair"]))
    divisor = ail_divisor(profiles["ail"].tolist())
    axes_names = ["APSP", *[f"RCS {s.name}" for s in scenarios], "CA", f"AIL/{divisor:g} ↓"]
    angles = np.linspace(0, 2 * np.pi, len(axes_names), endpoint=False)
    columns = len(pairs)
    figure, axes = plt.subplots(1, columns, figsize=(5.2 * columns, 5.4), subplot_kw={"projection": "polar"},
                                constrained_layout=True, squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        part = profiles[profiles["pair"] == pair]
        for _, row in part.iterrows():
            values = [row["apsp"], *[row[f"rcs:{s.name}"] for s in scenarios], row["ca"], row["ail"] / divisor]
            closed = np.append(values, values[0])
            style = RADAR_STYLE.get(row["router"], {})
            ax.plot(np.append(angles, angles[0]), closed, linewidth=2, label=row["router"], **style)
            ax.fill(np.append(angles, angles[0]), closed, alpha=0.06, color=style.get("color"))
        ax.set_xticks(angles, axes_names, fontsize=8)
        ax.set_ylim(0, 1.05 * max(1.0, float(part[["apsp", "ca"]].max().max())))
        ax.set_rlabel_position(180 / len(axes_names))
        ax.set_title(pair, fontsize=10, pad=14)
    axes[0][0].legend(loc="lower left", bbox_to_anchor=(-0.15, -0.15), fontsize=8)
    figure.suptitle("Across model pairs: larger is better on every axis except AIL")
    return save_figure(figure, path)


def alignment_figure(curves: Sequence[AlignmentCurve], path: Path, *, title: str) -> Path:
    """Figure 9: RCS against τ on validation (solid) and test (dashed) per scenario, τ* marked."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.3), constrained_layout=True, squeeze=False)
    for ax, curve in zip(axes[0], curves):
        ax.plot(curve.grid, curve.validation, color="#1F77B4", marker=".", label="validation")
        ax.plot(curve.grid, curve.test, color="#FF7F0E", linestyle="--", marker=".", label="test")
        ax.axvline(curve.tau, color="gray", linestyle=":", label=f"τ* = {curve.tau:.2f}")
        pearson = "n/a (constant curve)" if np.isnan(curve.pearson) else f"{curve.pearson:.3f}"
        ax.set(xlabel="decision threshold τ", ylabel=f"RCS ({curve.scenario})",
               title=f"{curve.scenario}: Pearson r {pearson}, mean |Δ| {curve.mean_abs_diff:.4f}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)


def risk_map_figure(risk: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Figure 11: CA (bars, left axis) and failure rate (line, right axis) per MES on safe/caution/high-risk bands."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.8), constrained_layout=True)
    positions = np.arange(len(risk))
    for x, band in zip(positions, risk["band"]):
        ax.axvspan(x - 0.5, x + 0.5, color=BAND_COLOURS[band], alpha=0.7, linewidth=0)
    bars = ax.bar(positions, risk["ca"], width=0.55, color="#4C72B0", label="CA (share on the edge)")
    for bar, value in zip(bars, risk["ca"]):
        ax.annotate(f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="Minimal Expectation Score (MES)", ylabel="Cost Advantage (CA)", ylim=(0, 1.12), xlim=(-0.5, len(risk) - 0.5))
    ax.set_xticks(positions, [f"{m:g}" for m in risk["mes"]])
    twin = ax.twinx()
    twin.plot(positions, 100 * risk["failure_rate"], color="#D62728", marker="o", linewidth=2, label="failure rate (1 − APSP)")
    for x, value in zip(positions, risk["failure_rate"]):
        twin.annotate(f"{100 * value:.1f}%", (x, 100 * value), textcoords="offset points", xytext=(0, 8), ha="center",
                      fontsize=8, color="#D62728", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    twin.set(ylabel="failure rate [%]", ylim=(0, 105))
    from matplotlib.patches import Patch

    handles = [*ax.get_legend_handles_labels()[0], *twin.get_legend_handles_labels()[0]]
    handles += [Patch(color=BAND_COLOURS["safe"], label=f"safe (< {SAFE_FAILURE:.0%} failures)"),
                Patch(color=BAND_COLOURS["caution"], label="caution"),
                Patch(color=BAND_COLOURS["high risk"], label=f"high risk (≥ {HIGH_RISK_FAILURE:.0%} failures)")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncols=3)
    ax.set_title(title)
    return save_figure(figure, path)


def mes_sweep_figure(means: pd.DataFrame, advantage: pd.DataFrame, scenarios: Sequence[Scenario], path: Path, *, title: str,
                     learned: Sequence[str]) -> Path:
    """Figure 12: (a) APSP, CA, AIL against MES for every router at the first scenario's operating point;
    (b) per scenario, each learned router's RCS advantage over the best other router (0 = the second best)."""
    plt = pyplot()
    columns = max(3, len(scenarios))
    figure, axes = plt.subplots(2, columns, figsize=(5.2 * columns, 8.5), constrained_layout=True, squeeze=False)
    first = means[means["scenario"] == scenarios[0].name]
    colours = {}
    for router, part in first.groupby("router", sort=False):
        (line,) = axes[0][0].plot(part["mes"], part["apsp"], marker="o", label=router)
        colours[router] = line.get_color()
        axes[0][1].plot(part["mes"], part["ca"], marker="o", color=line.get_color())
        axes[0][2].plot(part["mes"], part["ail"], marker="o", color=line.get_color())
    for ax, (metric, label) in zip(axes[0], (("apsp", "APSP ↑"), ("ca", "CA ↑"), ("ail", "AIL [s] ↓"))):
        ax.set(xlabel="MES", ylabel=label, title=f"(a) {label.split()[0]} vs MES ({scenarios[0].name} operating point)")
    axes[0][0].legend(fontsize=8)
    for number, (ax, scenario) in enumerate(zip(axes[1], scenarios), start=1):
        part = advantage[(advantage["scenario"] == scenario.name) & advantage["router"].isin(learned)]
        for router, rows in part.groupby("router", sort=False):
            ax.plot(rows["mes"], rows["advantage"], marker="o", color=colours.get(router), label=router)
        ax.axhline(0, color="black", linestyle="--", linewidth=1, label="second best")
        ax.set(xlabel="MES", ylabel="RCS − best other RCS", title=f"(b.{number}) {scenario.name}: advantage over the best other router")
        ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes[0][3:]:
        ax.axis("off")
    figure.suptitle(title)
    return save_figure(figure, path)
