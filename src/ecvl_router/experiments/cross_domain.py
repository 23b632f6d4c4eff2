"""Cross-domain generalisation (paper, Appendix B.2, Table 8): test on sources never seen in training.

The routers train and validate (stratified 3:1) on every source but the held-out ones and are tested on
the held-out sources alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecvl_router.data.rsd import RSD
from ecvl_router.experiments.context import ExperimentContext
from ecvl_router.experiments.main_table import ModelPair

CROSS_DOMAIN_ROUTERS = ("ecvl", "gbdt", "mlp", "mf", "all-large", "all-small")

DEMO_HOLDOUT_SOURCES = ("chart_reading", "open_description", "table_reasoning")
"""Held-out families of the bundled demo benchmark, mirroring the paper's held-out ChartQA, WildVision and
MMMU: charts (ChartQA), open description of a scene (WildVision) and multi-step table/diagram reasoning
(MMMU-Pro). MMVet, the paper's fourth, is a composite benchmark without a demo counterpart."""

HOLDOUT_SHARE = 0.2
"""Without a choice, the smallest sources are held out until they cover this share of the items (the paper's
held-out sources are about 22 % of its dataset)."""


def default_holdout_sources(rsd: RSD, share: float = HOLDOUT_SHARE) -> tuple[str, ...]:
    """The smallest sources (ties by name) that together hold at least ``share`` of the items, leaving one to train on."""
    counts = rsd.items["source"].value_counts()
    if len(counts) < 2:
        raise ValueError(f"dataset {rsd.info.name!r} has a single source; cross-domain testing needs at least two")
    ordered = sorted(counts.items(), key=lambda item: (item[1], str(item[0])))
    chosen: list[str] = []
    for source, count in ordered[:-1]:
        chosen.append(str(source))
        if counts[chosen].sum() >= share * counts.sum():
            break
    return tuple(chosen)


def run_cross_domain(
    context: ExperimentContext,
    pair: ModelPair,
    holdout_sources: Sequence[str],
    seeds: Sequence[int],
    *,
    routers: Sequence[str] = CROSS_DOMAIN_ROUTERS,
) -> list[dict[str, Any]]:
    """Result rows of every router tested on ``holdout_sources`` (per scenario and seed), the oracle included."""
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        result = context.run_pair(pair, routers=routers, seed=seed, holdout_sources=list(holdout_sources),
                                  label=f"Table 8 · seed {seed}")
        rows += result.rows
    return rows
