"""A routing task: one (edge, cloud) pair of a dataset, its competence labels and its train/val/test split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecvl_router.data.rsd import RSD, PairView
from ecvl_router.data.splits import Split, holdout_split, stratified_split, strata_of
from ecvl_router.labels import LabelRule, competence_labels, describe_rule
from ecvl_router.routers.multi import ScoreTargets

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class RoutingTask:
    """Everything a router is trained and evaluated on, except the features."""

    pair: PairView
    labels: np.ndarray
    split: Split
    mes: float
    rule: LabelRule
    k: float
    seed: int
    holdout_sources: tuple[str, ...] = ()

    def part(self, name: str) -> np.ndarray:
        """Row indices of ``train``, ``val`` or ``test``."""
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {', '.join(PARTS)}")
        return getattr(self.split, name)

    def view(self, name: str) -> tuple[PairView, np.ndarray]:
        """The pair view and labels restricted to one part."""
        rows = self.part(name)
        return self.pair.take(rows), self.labels[rows]

    def describe(self) -> dict:
        """Settings and sizes, for manifests and reports."""
        return {
            "edge": self.pair.edge,
            "cloud": self.pair.cloud,
            "label_rule": describe_rule(self.rule, mes=self.mes, k=self.k),
            "rule": self.rule,
            "mes": self.mes,
            "k": self.k,
            "seed": self.seed,
            "holdout_sources": list(self.holdout_sources),
            "items": len(self.pair),
            "excluded_items": self.pair.n_excluded,
            "edge_competent_share": float(self.labels.mean()) if len(self.labels) else float("nan"),
            "split_sizes": dict(zip(PARTS, self.split.sizes())),
        }


def build_task(
    rsd: RSD,
    edge: str,
    cloud: str,
    *,
    mes: float,
    rule: LabelRule = "mes",
    k: float = 1,
    seed: int = 0,
    holdout_sources: Sequence[str] = (),
) -> RoutingTask:
    """Label the (edge, cloud) pair and split it: stratified 6:2:2 on (source, label), or held-out sources as test."""
    if not rsd.info.score_min <= mes <= rsd.info.score_max:
        raise ValueError(f"MES {mes:g} is outside the dataset's score scale [{rsd.info.score_min:g}, {rsd.info.score_max:g}]")
    pair = rsd.pair(edge=edge, cloud=cloud)
    if len(pair) < 10:
        raise ValueError(f"only {len(pair)} items have responses from both {edge!r} and {cloud!r}; need at least 10")
    labels = competence_labels(pair.score_edge, pair.score_cloud, mes=mes, rule=rule, k=k)
    if holdout_sources:
        split = holdout_split(pair.sources, labels, list(holdout_sources), seed=seed)
    else:
        split = stratified_split(strata_of(pair.sources, labels), seed=seed)
    return RoutingTask(pair, labels, split, float(mes), rule, float(k), seed, tuple(holdout_sources))


def score_targets(rsd: RSD, task: RoutingTask) -> ScoreTargets:
    """Every model's score on the task's queries (NaN where a model did not answer), for multi-model routers."""
    return pair_score_targets(rsd, task.pair, mes=task.mes, rule=task.rule, k=task.k)


def pair_score_targets(rsd: RSD, pair: PairView, *, mes: float, rule: LabelRule = "mes", k: float = 1) -> ScoreTargets:
    """Every model's score on the queries of ``pair`` (NaN where a model did not answer), deciding for that pair."""
    table = rsd.responses.pivot_table(index="item_id", columns="model", values="score", aggfunc="first")
    models = tuple(rsd.models)
    scores = table.reindex(index=pair.item_ids, columns=list(models)).to_numpy(dtype=np.float64)
    return ScoreTargets(scores, models, pair.edge, pair.cloud, mes, rule, k)
