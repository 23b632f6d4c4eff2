"""Ablation of the ecvl router's input branches (paper, Table 3), next to the fixed policies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecvl_router.experiments.context import ExperimentContext
from ecvl_router.experiments.main_table import ModelPair

ABLATION_VARIANTS: dict[str, tuple[str, ...] | None] = {
    "ecvl (full)": None,
    "w/o text": ("image", "stats"),
    "w/o image": ("text", "stats"),
    "w/o statistics": ("text", "image"),
    "only text": ("text",),
    "only image": ("image",),
    "only statistics": ("stats",),
}
"""Variant name -> the ecvl branches it keeps (None: every branch, the router's default settings)."""

ABLATION_POLICIES = ("random", "all-large", "all-small")


def run_ablation(context: ExperimentContext, pair: ModelPair, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Result rows (one per variant × scenario × seed, key ``variant``) of every branch variant and fixed policy.

    The full variant has exactly Table 1's settings, so its trained routers come from the cache.
    """
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for variant, branches in ABLATION_VARIANTS.items():
            params = {"ecvl": {"branches": list(branches)}} if branches is not None else None
            result = context.run_pair(pair, routers=("ecvl",), seed=seed, label=f"Table 3 · seed {seed} · {variant}",
                                      router_params=params)
            rows += [{**row, "variant": variant} for row in result.rows if row["router"] == "ecvl"]
        policies = context.run_pair(pair, routers=ABLATION_POLICIES, seed=seed, label=f"Table 3 · seed {seed}")
        rows += [{**row, "variant": row["router"]} for row in policies.rows if row["router"] in ABLATION_POLICIES]
    return rows
