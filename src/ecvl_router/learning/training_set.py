"""What every training recipe trains on: a pair's queries with their features, targets, labels and strata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecvl_router.data.rsd import PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers.multi import ScoreTargets

Targets = np.ndarray | ScoreTargets
"""What a router learns from: the pair's 0/1 labels, or every model's scores (routers that learn scores)."""


def take_targets(y: Targets, rows: np.ndarray) -> Targets:
    """The targets of queries ``rows``: labels, or every model's scores."""
    if isinstance(y, ScoreTargets):
        return ScoreTargets(y.scores[rows], y.models, y.edge, y.cloud, y.mes, y.rule, y.k)
    return np.asarray(y)[rows]


@dataclass(frozen=True)
class TrainingSet:
    """One pair's training queries, row-aligned.

    ``targets`` is what the router learns from; ``labels`` the pair's 0/1 competence labels (for
    calibration and fallback tests); ``strata`` stratify every inner split; ``groups`` (optional) keep
    related queries, such as variants of one question, on one side of every inner split.
    """

    features: QueryFeatures
    targets: Targets
    labels: np.ndarray
    pair: PairView
    strata: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = {len(self.features), len(self.targets), len(self.labels), len(self.pair), len(self.strata)}
        if self.groups is not None:
            sizes.add(len(self.groups))
        if len(sizes) != 1:
            raise ValueError(f"a training set's parts must have one row per query, got sizes {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> TrainingSet:
        """The training set of queries ``rows``."""
        return TrainingSet(
            self.features.take(rows), take_targets(self.targets, rows), np.asarray(self.labels)[rows],
            self.pair.take(rows), np.asarray(self.strata)[rows],
            None if self.groups is None else np.asarray(self.groups)[rows],
        )
