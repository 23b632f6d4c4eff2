"""The champion-vs-challenger report: Markdown with the verdict, a CSV per table, and a figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ecvl_router.learning.champion import Verdict
from ecvl_router.report.figures import pyplot, save_figure


def contest_markdown(summary: pd.DataFrame, guarantees: pd.DataFrame, verdict: Verdict, *, context: Sequence[str]) -> str:
    """The verdict first, then per scenario both routers' RCS and the paired difference, then the guarantees."""
    lines = ["# Champion against challenger", "", f"**Verdict: {verdict.word}.**", "",
             *[f"- {reason}" for reason in verdict.reasons], "", "## Setting", "", *[f"- {line}" for line in context], "",
             "## RCS on captured queries neither router trained on (95 % CI over folds)", "",
             "| scenario | champion | challenger | challenger − champion | edge share (champion → challenger) |",
             "|---|---|---|---|---|"]
    for row in summary.itertuples():
        lines.append(f"| {row.scenario} | {row.champion_rcs:.4f} [{row.champion_low:.4f}, {row.champion_high:.4f}] "
                     f"| {row.challenger_rcs:.4f} [{row.challenger_low:.4f}, {row.challenger_high:.4f}] "
                     f"| {row.diff:+.4f} [{row.diff_low:+.4f}, {row.diff_high:+.4f}] "
                     f"| {row.champion_ca:.3f} → {row.challenger_ca:.3f} |")
    if len(guarantees):
        lines += ["", "## Guarantees of the challenger on captured queries", "",
                  "| scenario | max quality drop | confidence | violation rate | allowed | p (rate > allowed) | holds |",
                  "|---|---|---|---|---|---|---|"]
        for row in guarantees.itertuples():
            lines.append(f"| {row.scenario} | {row.max_quality_drop:g} | {row.confidence:g} | {row.violation_rate:.3f} "
                         f"| {row.allowed:.3f} | {row.pvalue:.3g} | {'yes' if row.holds else 'no'} |")
    return "\n".join(lines) + "\n"


def contest_figure(summary: pd.DataFrame, path: Path, *, margin: float) -> Path:
    """Paired challenger − champion RCS per scenario with its 95 % interval, beside zero and −margin."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(max(4.0, 1.4 * len(summary) + 2), 3.6))
    x = range(len(summary))
    lower = summary["diff"] - summary["diff_low"]
    upper = summary["diff_high"] - summary["diff"]
    colours = ["tab:green" if low >= -margin else "tab:red" for low in summary["diff_low"]]
    for position, (mean, low, high, colour) in enumerate(zip(summary["diff"], lower, upper, colours)):
        axis.errorbar([position], [mean], yerr=[[low], [high]], fmt="o", capsize=5, color=colour)
    axis.axhline(0, color="black", linewidth=1)
    axis.axhline(-margin, color="tab:red", linestyle="--", linewidth=1, label=f"−margin ({margin:g})")
    axis.set_xticks(list(x), summary["scenario"].tolist())
    axis.set_ylabel("challenger − champion RCS")
    axis.set_title("Paired difference on captured queries (95 % CI over folds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
