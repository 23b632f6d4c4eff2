"""The drift report: Markdown with the verdict and the tables, and a figure of p live against the bundle's reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.report.figures import pyplot, save_figure


def _number(value: Any, digits: int = 3) -> str:
    return "–" if isinstance(value, float) and math.isnan(value) else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def drift_markdown(scenarios: pd.DataFrame, queries: pd.DataFrame | None, due: bool, *, context: Sequence[str]) -> str:
    """Whether retraining is due, then per scenario PSI and edge shares, then the query statistics."""
    lines = ["# Drift of live traffic against the router's training data", "",
             f"**Retraining {'is due' if due else 'is not due'}.**", "", *[f"- {line}" for line in context], "",
             "## Routing probability p and edge share per scenario", "",
             "| scenario | live queries | with p | PSI of p | live edge share | validation edge share | reading |",
             "|---|---|---|---|---|---|---|"]
    for row in scenarios.itertuples():
        lines.append(f"| {row.scenario} | {row.queries} | {row.with_p} | {_number(row.psi)} | {_number(row.live_edge_share)} "
                     f"| {_number(row.validation_edge_share)} | {row.level} |")
    if queries is not None:
        lines += ["", "## Queries", "", "| statistic | training | live | PSI | reading |", "|---|---|---|---|---|"]
        for row in queries.itertuples():
            lines.append(f"| {row.statistic} | {_number(row.training, 2)} | {_number(row.live, 2)} | {_number(row.psi)} | {row.level} |")
    lines += ["", "PSI below 0.1 reads as stable, 0.1–0.25 as worth watching, above 0.25 as a call to retrain; a live edge "
              "share more than 0.10 from the validation share also calls for retraining."]
    return "\n".join(lines) + "\n"


def drift_figure(live: pd.DataFrame, manifest: dict[str, Any], path: Path) -> Path:
    """Per scenario: the share of queries in each p bin, the bundle's held-out reference against live traffic."""
    names = list(manifest.get("scenarios", {}))
    plt = pyplot()
    figure, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.4), squeeze=False)
    for axis, name in zip(axes[0], names):
        reference = manifest.get("p_reference", {}).get(name)
        p = live.loc[live["scenario"] == name, "p"].dropna().to_numpy(dtype=np.float64)
        if reference:
            bins = np.asarray(reference["bins"])
            counts = np.asarray(reference["counts"], dtype=np.float64)
            axis.stairs(counts / max(counts.sum(), 1), bins, label=f"reference ({reference['part']}, n={reference['n']})", linewidth=1.5)
            if len(p):
                live_counts = np.histogram(np.clip(p, 0, 1), bins=bins)[0]
                axis.stairs(live_counts / live_counts.sum(), bins, label=f"live (n={len(p)})", linewidth=1.5)
        axis.axvline(manifest["scenarios"][name].get("tau", np.nan), color="grey", linestyle="--", linewidth=1, label="τ")
        axis.set_title(name)
        axis.set_xlabel("p = P(edge meets the MES)")
        axis.set_ylabel("share of queries")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)
