"""The MES sweep (paper, Figures 11 and 12 and Appendix B.4): every router retrained at each MES.

At each MES the labels (MES rule) and the scenarios' MES change; each router is trained and its τ
searched on validation for each scenario, then evaluated on test. Figure 11 reads the ecvl router's
edge share and failure rate (1 − APSP) off the sweep; Figure 12 the metrics of every router and each
router's RCS advantage over the best of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.experiments.context import ExperimentContext
from ecvl_router.experiments.main_table import ModelPair

SWEEP_ROUTERS = ("ecvl", "gbdt", "mlp", "mf", "all-large", "all-small")
SAFE_FAILURE = 0.2
HIGH_RISK_FAILURE = 0.5
"""Risk bands of Figure 11: safe below 20 % failures, high risk from 50 %, caution between."""


def run_mes_sweep(
    context: ExperimentContext,
    pair: ModelPair,
    mes_values: Sequence[float],
    seeds: Sequence[int],
    *,
    routers: Sequence[str] = SWEEP_ROUTERS,
) -> list[dict[str, Any]]:
    """Result rows (``mes`` set to the sweep point) of every router at every MES, per scenario and seed."""
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for mes in mes_values:
            scenarios = [s.with_mes(mes) for s in context.scenarios]
            result = context.run_pair(pair, routers=routers, seed=seed, scenarios=scenarios, label=f"MES sweep · seed {seed} · MES {mes:g}")
            rows += [row for row in result.rows if row["router"] in routers]
    return rows


def risk_band(failure_rate: float) -> str:
    """``safe``, ``caution`` or ``high risk`` for a failure rate (share of queries whose answer misses the MES)."""
    if failure_rate < SAFE_FAILURE:
        return "safe"
    return "caution" if failure_rate < HIGH_RISK_FAILURE else "high risk"


def risk_map(rows: Sequence[dict[str, Any]], scenario: str, router: str = "ecvl") -> pd.DataFrame:
    """Per MES: the router's CA and failure rate (1 − APSP) at ``scenario``'s operating point (mean over seeds), and the band."""
    frame = pd.DataFrame(list(rows))
    part = frame[(frame["router"] == router) & (frame["scenario"] == scenario)]
    if part.empty:
        raise ValueError(f"the sweep has no rows of router {router!r} in scenario {scenario!r}")
    table = part.groupby("mes", sort=True).agg(ca=("ca", "mean"), apsp=("apsp", "mean"))
    table["failure_rate"] = 1.0 - table["apsp"]
    table["band"] = [risk_band(value) for value in table["failure_rate"]]
    return table.reset_index()


def sweep_means(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean APSP, CA, AIL and RCS over seeds per (MES, scenario, router)."""
    frame = pd.DataFrame(list(rows))
    return frame.groupby(["mes", "scenario", "router"], sort=True)[["apsp", "ca", "ail", "rcs"]].mean().reset_index()


def advantages(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per (MES, scenario, router): RCS minus the best RCS of the other routers (mean over seeds first).

    Positive for the best router (its margin over the second best), negative for the others (their gap to
    the best); the second best's curve is the baseline at zero.
    """
    means = sweep_means(rows)
    out = []
    for (mes, scenario), group in means.groupby(["mes", "scenario"], sort=True):
        rcs = group["rcs"].to_numpy()
        for position, router in enumerate(group["router"]):
            others = np.delete(rcs, position)
            best_other = others.max() if len(others) else np.nan
            out.append({"mes": mes, "scenario": scenario, "router": router, "advantage": float(rcs[position] - best_other)})
    return pd.DataFrame(out)
