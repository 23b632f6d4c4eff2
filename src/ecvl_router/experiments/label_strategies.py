"""Label strategies (paper, Table 4): the MES rule against win-hard and win-soft(k), under one protocol.

Every strategy trains the ecvl router on its own labels over the same split (the MES rule's stratified
6:2:2 split of Table 1), searches τ on validation for each scenario's RCS, and is evaluated on the same
test queries with the same metrics: APSP at the scenario's MES, CA, AIL, RCS, PGR and the savings.
Accuracy is reported twice: against the strategy's own labels and against the MES rule's labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ecvl_router.experiments.context import ExperimentContext
from ecvl_router.experiments.main_table import ModelPair
from ecvl_router.labels import LabelRule, competence_labels
from ecvl_router.learning.routing_task import build_task


@dataclasses.dataclass(frozen=True)
class LabelStrategy:
    """A label rule with its margin ``k`` (win-soft only), named as in the paper."""

    name: str
    rule: LabelRule
    k: float = 1.0


def paper_strategies(unit: float = 1.0) -> tuple[LabelStrategy, ...]:
    """The MES rule, win-hard, win-soft(1) and win-soft(2); ``unit`` is one point of the paper's scale."""
    return (
        LabelStrategy("MES rule", "mes"),
        LabelStrategy("win-hard", "win-hard"),
        LabelStrategy(f"win-soft({unit:g})", "win-soft", unit),
        LabelStrategy(f"win-soft({2 * unit:g})", "win-soft", 2 * unit),
    )


def run_label_strategies(
    context: ExperimentContext, pair: ModelPair, strategies: Sequence[LabelStrategy], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Result rows (key ``strategy``; ``accuracy`` on own labels, ``accuracy_mes`` on the MES rule's) per scenario and seed."""
    mes = context.scenarios[0].mes
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        base = build_task(context.rsd, pair.edge, pair.cloud, mes=mes, seed=seed)
        test = base.part("test")
        mes_labels = base.labels[test].astype(bool)
        for strategy in strategies:
            labels = competence_labels(base.pair.score_edge, base.pair.score_cloud, mes=mes, rule=strategy.rule, k=strategy.k)
            task = base if strategy.rule == "mes" else dataclasses.replace(base, labels=labels, rule=strategy.rule, k=float(strategy.k))
            result = context.run_pair(pair, routers=("ecvl",), seed=seed, task=task, label=f"Table 4 · seed {seed} · {strategy.name}")
            for row in result.rows:
                if row["router"] != "ecvl":
                    continue
                to_edge = result.probabilities["ecvl"][row["scenario"]] >= row["tau"]
                rows.append({**row, "strategy": strategy.name, "accuracy_mes": float(np.mean(to_edge == mes_labels))})
    return rows
