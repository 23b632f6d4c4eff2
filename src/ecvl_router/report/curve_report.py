"""Cost–quality curves as Markdown tables, CSV and one figure per model pair (mean curves with 95 % bands per
policy, random routing and the oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecvl_router.learning.curve_summary import RANDOM, CurveSummary
from ecvl_router.learning.curves import TARGETS, target_key
from ecvl_router.report.figures import pyplot, save_figure
from ecvl_router.report.tables import interval_cell, markdown_grid

SHARES_FILE = "curves.csv"
POINTS_FILE = "curve_points.csv"
FIGURE_FILE = "cost_quality.png"

CURVES_INTRO = (
    "Route by p: at edge share s the s·n test queries with the highest p go to the edge (tied p share their block at "
    "random). The curve share is the area between the curve and random routing as a share of the oracle's; "
    "the edge share at a target is the largest share whose quality is still at least that share of all-at-cloud "
    "quality, next to random routing's (× random: the ratio of the means). The gap is the paired per-fold "
    "difference of curve share to the best router; `*` marks an interval that excludes zero. "
    "Definitions in docs/evaluation.md (\"Cost–quality curves\")."
)


def measure_title(measure: str, mes: float, *, merged: bool = False) -> str:
    """How a quality measure is named in tables and figures (``merged``: the mean score stands for both)."""
    if measure == "score":
        return f"mean score (= APSP at MES {mes:g})" if merged else "mean score"
    return f"APSP at MES {mes:g}"


def measures_agree(points: pd.DataFrame) -> bool:
    """Whether every APSP curve equals the mean-score curve (0/1 scores with the MES in (0, 1])."""
    score, apsp = (points[points["measure"] == m].reset_index(drop=True) for m in ("score", "apsp"))
    return len(score) == len(apsp) and bool(np.allclose(score["quality"], apsp["quality"], equal_nan=True))


def curve_markdown(shares: pd.DataFrame, heading: str = "###", *, merged: bool = False) -> str:
    """One table per (scenario, measure): curve share, paired gap to the best router, edge share kept at each target;
    ``merged``: the mean-score tables only, standing for APSP too."""
    parts = []
    for (scenario, measure), block in shares.groupby(["scenario", "measure"], sort=False):
        if merged and measure != "score":
            continue
        best = block["best_router"].iloc[0] if isinstance(block["best_router"].iloc[0], str) else None
        header = ["policy", "curve share", *([f"gap to {best}"] if best else [])]
        for target in TARGETS:
            header += [f"edge share ≥ {100 * target:.0f} %", "× random"]
        body = []
        for _, row in block.iterrows():
            cells = [row["policy"], interval_cell(row, "curve_share", 3)]
            if best:
                significant = row["policy"] != best and (row["gap_low"] > 0 or row["gap_high"] < 0)
                cells.append("–" if row["policy"] in (best, RANDOM) else interval_cell(row, "gap", 3) + (" *" if significant else ""))
            for target in TARGETS:
                key = target_key(target)
                ratio = row.get(f"{key}_vs_random")
                cells += [interval_cell(row, key, 3), "–" if row["policy"] == RANDOM or pd.isna(ratio) else f"{ratio:.2f}"]
            body.append(cells)
        title = measure_title(measure, block["mes"].iloc[0], merged=merged)
        parts.append(f"{heading} {scenario}: {title}\n\n{markdown_grid(header, body)}")
    return "\n".join(parts)


def cost_quality_figure(points: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Quality against edge share, one panel per (measure, scenario): every policy's mean curve with its 95 % band,
    the oracle (black), random routing (dashed) and the quality targets (dotted, shares of all-at-cloud quality).
    The mean curves set each panel's range; bands reaching further are cut at its edge."""
    plt = pyplot()
    merged = measures_agree(points)
    scenarios = list(dict.fromkeys(points["scenario"]))
    measures = ["score"] if merged else list(dict.fromkeys(points["measure"]))
    figure, axes = plt.subplots(len(measures), len(scenarios), figsize=(max(5.4 * len(scenarios), 9.0), 4.4 * len(measures)),
                                constrained_layout=True, squeeze=False)
    for row, measure in enumerate(measures):
        for column, scenario in enumerate(scenarios):
            ax = axes[row, column]
            block = points[(points["measure"] == measure) & (points["scenario"] == scenario)]
            for policy, curve in block.groupby("policy", sort=False):
                style = {"oracle": {"color": "black"}, RANDOM: {"color": "grey", "linestyle": "--"}}.get(policy, {})
                (line,) = ax.plot(curve["share"], curve["quality"], label=policy, linewidth=1.4, **style)
                ax.fill_between(curve["share"], curve["low"], curve["high"], color=line.get_color(), alpha=0.12, linewidth=0)
            cloud = block.loc[(block["policy"] == RANDOM) & (block["share"] == 0.0), "quality"]
            for target in TARGETS if len(cloud) else ():
                ax.axhline(target * float(cloud.iloc[0]), color="grey", linestyle=":", linewidth=0.8)
                ax.annotate(f"{100 * target:.0f} %", (1.0, target * float(cloud.iloc[0])), fontsize=7, color="grey",
                            ha="right", va="bottom")
            low, high = block["quality"].min(), block["quality"].max()
            margin = 0.5 * (high - low) if high > low else 0.05 * max(abs(high), 1.0)
            ax.set_ylim(low - margin, high + margin)  # the mean curves decide the range; wider bands are cut at the panel
            name = measure_title(measure, block["mes"].iloc[0], merged=merged)
            ax.set(xlabel="edge share (queries sent to the edge)", ylabel=name, title=f"{scenario}: {name}", xlim=(0, 1))
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8)
    figure.suptitle(f"{title}\nroute by p: the highest p go to the edge first", fontsize=10)
    return save_figure(figure, path)


def write_curves(curves: CurveSummary, out: Path, *, title: str, heading: str = "###") -> str:
    """Write ``curves.csv``, ``curve_points.csv`` and ``cost_quality.png`` into ``out``; returns the Markdown section's
    body (what the columns mean, the tables, the figure)."""
    curves.shares.to_csv(out / SHARES_FILE, index=False)
    curves.points.to_csv(out / POINTS_FILE, index=False)
    cost_quality_figure(curves.points, out / FIGURE_FILE, title=title)
    tables = curve_markdown(curves.shares, heading, merged=measures_agree(curves.points))
    return f"{CURVES_INTRO}\n\n{tables}\n![Cost–quality curves]({FIGURE_FILE})\n"
