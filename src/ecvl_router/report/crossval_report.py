"""The cross-validated router comparison as Markdown, CSV and figures (RCS with 95 % CI bars per policy; the
cost–quality curves of ``curve_report``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecvl_router.learning.curve_summary import CurveSummary
from ecvl_router.report.curve_report import write_curves
from ecvl_router.report.figures import pyplot, save_figure
from ecvl_router.report.tables import interval_cell, markdown_grid

FOLD_ROWS_FILE = "folds.csv"
SUMMARY_FILE = "summary.csv"
FIGURE_FILE = "rcs.png"
REPORT_FILE = "report.md"


def _share(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.0f} %"


def summary_markdown(summary: pd.DataFrame) -> str:
    """One table per scenario: APSP, CA, AIL, RCS with CIs, headroom shares, the paired gain over the best trivial policy."""
    has_bayes = "headroom_bayes" in summary.columns
    parts = []
    for scenario, block in summary.groupby("scenario", sort=False):
        trivial = block["best_trivial"].iloc[0]
        header = ["policy", "APSP", "CA", "AIL [s]", "RCS", "headroom (oracle)"]
        header += ["headroom (bayes)"] if has_bayes else []
        header += [f"RCS gain over {trivial}", "fallbacks"]
        body = []
        for _, row in block.iterrows():
            cells = [row["policy"], *(interval_cell(row, key, digits) for key, digits in (("apsp", 3), ("ca", 3), ("ail", 2), ("rcs", 4)))]
            cells.append(_share(row["headroom_oracle"]))
            if has_bayes:
                cells.append(_share(row.get("headroom_bayes")))
            gain = interval_cell(row, "gain", 4) + (" *" if row["gain_low"] > 0 or row["gain_high"] < 0 else "")
            cells += [gain, _share(row["fallback_share"]) if row["fallback_share"] else "–"]
            body.append(cells)
        parts.append(f"### {scenario}\n\n{markdown_grid(header, body)}")
    return "\n".join(parts)


def rcs_figure(summary: pd.DataFrame, path: Path, *, title: str) -> Path:
    """RCS mean with its 95 % CI per policy, one panel per scenario; dashed line at the best trivial policy.

    The oracle, far to the right of every router, is named in the panel's title instead of drawn.
    """
    plt = pyplot()
    scenarios = list(dict.fromkeys(summary["scenario"]))
    figure, axes = plt.subplots(1, len(scenarios), figsize=(5.2 * len(scenarios), 4.6), constrained_layout=True, squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        everything = summary[summary["scenario"] == scenario]
        oracle = everything.loc[everything["policy"] == "oracle", "rcs"]
        block = everything[everything["policy"] != "oracle"].reset_index(drop=True)
        errors = [block["rcs"] - block["rcs_low"], block["rcs_high"] - block["rcs"]]
        ax.errorbar(block["rcs"], range(len(block)), xerr=errors, fmt="o", capsize=3)
        trivial = block.loc[block["policy"] == block["best_trivial"].iloc[0], "rcs"].iloc[0]
        ax.axvline(trivial, linestyle="--", color="grey", label=f"best trivial ({block['best_trivial'].iloc[0]})")
        ax.set_yticks(range(len(block)), block["policy"])
        ax.invert_yaxis()
        ax.set_xlabel("RCS (mean, 95 % CI)")
        ax.set_title(f"{scenario} (oracle {oracle.iloc[0]:.3f})" if len(oracle) else scenario)
        ax.legend(loc="lower right", fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)


def write_crossval_report(
    folds: pd.DataFrame, summary: pd.DataFrame, out: Path, *, title: str, settings: dict[str, Any], notes: Sequence[str] = (),
    curves: CurveSummary | None = None,
) -> Path:
    """Write ``folds.csv``, ``summary.csv``, ``rcs.png`` and ``report.md`` into ``out``, and with ``curves`` also
    ``curves.csv``, ``curve_points.csv`` and ``cost_quality.png``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    folds.to_csv(out / FOLD_ROWS_FILE, index=False)
    summary.to_csv(out / SUMMARY_FILE, index=False)
    rcs_figure(summary, out / FIGURE_FILE, title=title)
    setting_lines = "\n".join(f"- {key}: {value}" for key, value in settings.items())
    note_lines = "".join(f"- {note}\n" for note in notes)
    text = (
        f"# {title}\n\n{setting_lines}\n\n"
        "Means over the test folds with 95 % confidence intervals (corrected resampled t, Nadeau & Bengio). "
        "The gain is the paired per-fold RCS difference against the better trivial policy; `*` marks an interval "
        "that excludes zero. Headroom: (RCS − best trivial) / (reference − best trivial).\n\n"
        f"{note_lines}\n{summary_markdown(summary)}\n![RCS per policy]({FIGURE_FILE})\n"
    )
    if curves is not None and len(curves.shares):
        text += f"\n## Cost–quality curves\n\n{write_curves(curves, out, title=title)}"
    path = out / REPORT_FILE
    path.write_text(text, encoding="utf-8")
    return path
