"""The report of the main experiment: Table 1 (Markdown and CSV) and the τ-sensitivity figure per pair."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecvl_router.experiments.main_table import ORACLE, PairResult
from ecvl_router.report.figures import threshold_sensitivity_figure
from ecvl_router.report.tables import scenario_table_markdown, write_csv
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.thresholds import THRESHOLD_GRID

FIXED_POLICIES = ("random", "all-large", "all-small", ORACLE)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def headline(results: Sequence[PairResult], scenario: Scenario) -> list[dict[str, Any]]:
    """Per pair: the learned router with the best test RCS in ``scenario``, its edge share and APSP drop vs all-at-large."""
    lines = []
    for result in results:
        rows = pd.DataFrame(result.rows)
        rows = rows[rows["scenario"] == scenario.name]
        learned = rows[~rows["router"].isin(FIXED_POLICIES)]
        best = learned.loc[learned["rcs"].idxmax()]
        large = rows[rows["router"] == "all-large"].iloc[0]
        lines.append(
            {
                "pair": result.pair.label,
                "router": best["router"],
                "rcs": best["rcs"],
                "edge_share": best["ca"],
                "apsp": best["apsp"],
                "apsp_all_large": large["apsp"],
                "apsp_drop_relative": (large["apsp"] - best["apsp"]) / large["apsp"] if large["apsp"] else float("nan"),
                "ail": best["ail"],
                "ail_all_large": large["ail"],
            }
        )
    return lines


def write_main_report(results: Sequence[PairResult], scenarios: Sequence[Scenario], out_dir: Path, *, notes: Sequence[str] = ()) -> Path:
    """Write ``table1.csv``, ``table1.md``, one τ-sensitivity PNG per pair and ``report.md``; returns report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row for result in results for row in result.rows]
    write_csv(rows, out_dir / "table1.csv")
    table = scenario_table_markdown(rows, [s.name for s in scenarios])
    (out_dir / "table1.md").write_text(table, encoding="utf-8")
    sections = [
        "# Routing results\n",
        *[f"{note}\n" for note in notes],
        "## Table 1: routers on each model pair and scenario (test split)\n",
        "Each scenario's APSP, CA and AIL are measured at that scenario's own operating point τ*, chosen on the "
        "validation split (grid 0, 0.05, …, 1) to maximise the scenario's RCS; RCS = α·APSP + β·CA − γ·AIL. "
        "`random` routes at τ = 0.5, `all-large` never and `all-small` always uses the edge, and `oracle` routes "
        "by the true label (the upper bound). Raw rows: `table1.csv`.\n",
        table,
        "## Figure 2: sensitivity to the decision threshold τ (test split)\n",
    ]
    for result in results:
        learned = {r: p for r, p in result.probabilities.items() if r not in FIXED_POLICIES}
        name = f"tau_sensitivity_{_slug(result.pair.label)}.png"
        view, _ = result.task.view("test")
        threshold_sensitivity_figure(
            learned, result.taus, view, scenarios, THRESHOLD_GRID, out_dir / name, title=f"Impact of τ: {result.pair.label}, MES {scenarios[0].mes:g}"
        )
        sections.append(
            f"![τ sensitivity, {result.pair.label}]({name})\n\n*{result.pair.label}: APSP, CA and AIL (first row, "
            f"{scenarios[0].name} weights) and each scenario's RCS (second row) against τ on the test split; ★ marks the τ* "
            "chosen on validation.*\n"
        )
    report = out_dir / "report.md"
    report.write_text("\n".join(sections), encoding="utf-8")
    return report
