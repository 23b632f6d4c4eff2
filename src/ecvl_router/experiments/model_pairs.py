"""Adaptability across model pairs (paper, Appendix B.1, Figure 8): one profile per pair and router."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ecvl_router.scenarios import Scenario

RADAR_ROUTERS = ("ecvl", "all-large", "all-small")
PAPER_AIL_DIVISOR = 5.0


def pair_profiles(rows: Sequence[dict[str, Any]], scenarios: Sequence[Scenario], routers: Sequence[str] = RADAR_ROUTERS) -> pd.DataFrame:
    """Per (pair, router), means over seeds: APSP, CA and AIL at the first scenario's operating point and
    each scenario's RCS at its own (columns ``rcs:<scenario>``)."""
    frame = pd.DataFrame(list(rows))
    frame = frame[frame["router"].isin(routers)]
    first = frame[frame["scenario"] == scenarios[0].name].groupby(["pair", "router"], sort=False)[["apsp", "ca", "ail"]].mean()
    for scenario in scenarios:
        part = frame[frame["scenario"] == scenario.name].groupby(["pair", "router"], sort=False)["rcs"].mean()
        first[f"rcs:{scenario.name}"] = part
    return first.reset_index()


def ail_divisor(ail_values: Sequence[float]) -> float:
    """The paper's AIL/5 scaling, or the largest AIL rounded up when some AIL exceeds 5 s (radii stay within 1)."""
    largest = max(ail_values, default=0.0)
    return PAPER_AIL_DIVISOR if largest <= PAPER_AIL_DIVISOR else float(math.ceil(largest))
