"""What every training recipe trains on: a pair's queries with their features, targets, labels and strata."""

from __future__ import annotations

import dataclasses
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
    related queries, such as variants of one question, on one side of every inner split. The features
    carry the pair's sources and the groups, so routers with an inner cross-validation keep groups whole too.
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
        object.__setattr__(self, "features", self.features.with_context(sources=self.pair.sources, groups=self.groups))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> TrainingSet:
        """The training set of queries ``rows``."""
        return TrainingSet(
            self.features.take(rows), take_targets(self.targets, rows), np.asarray(self.labels)[rows],
            self.pair.take(rows), np.asarray(self.strata)[rows],
            None if self.groups is None else np.asarray(self.groups)[rows],
        )


def concat_training_sets(first: TrainingSet, second: TrainingSet) -> TrainingSet:
    """``first``'s queries followed by ``second``'s (one pair; score targets aligned on ``first``'s models).

    Both must have groups or neither; a model of ``first`` that ``second`` lacks scores NaN there, as a
    model that did not answer does.
    """
    if (first.groups is None) != (second.groups is None):
        raise ValueError("either both training sets have groups or neither")
    features = QueryFeatures(**{
        field.name: _concat_optional(getattr(first.features, field.name), getattr(second.features, field.name))
        for field in dataclasses.fields(QueryFeatures)
    })
    return TrainingSet(
        features, _concat_targets(first.targets, second.targets), np.concatenate([first.labels, second.labels]),
        _concat_pairs(first.pair, second.pair), np.concatenate([first.strata, second.strata]),
        None if first.groups is None else np.concatenate([first.groups, second.groups]),
    )


def _concat_optional(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    """Both arrays one after the other; None where either is unknown."""
    return None if first is None or second is None else np.concatenate([first, second])


def _concat_pairs(first: PairView, second: PairView) -> PairView:
    if (first.edge, first.cloud) != (second.edge, second.cloud):
        raise ValueError(f"cannot join the pair {first.edge!r}/{first.cloud!r} with {second.edge!r}/{second.cloud!r}")
    values: dict[str, object] = {"groups": _concat_groups(first, second)}
    for field in dataclasses.fields(PairView):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if field.name == "groups":
            continue
        if isinstance(a, np.ndarray):
            values[field.name] = np.concatenate([a, b])
        elif isinstance(a, int) and field.name.startswith("missing"):
            values[field.name] = a + b
        else:
            values[field.name] = a
    return PairView(**values)  # type: ignore[arg-type]


def _concat_groups(first: PairView, second: PairView) -> np.ndarray | None:
    """Both views' groups; where only one has groups, each query of the other is a group of its own (its item id)."""
    if first.groups is None and second.groups is None:
        return None
    return np.concatenate([view.item_ids if view.groups is None else view.groups for view in (first, second)])


def _concat_targets(first: Targets, second: Targets) -> Targets:
    if isinstance(first, ScoreTargets) != isinstance(second, ScoreTargets):
        raise ValueError("cannot join labels with every model's scores")
    if not isinstance(first, ScoreTargets):
        return np.concatenate([np.asarray(first), np.asarray(second)])
    assert isinstance(second, ScoreTargets)
    aligned = np.full((len(second), len(first.models)), np.nan)
    for column, model in enumerate(first.models):
        if model in second.models:
            aligned[:, column] = second.scores[:, second.models.index(model)]
    return dataclasses.replace(first, scores=np.concatenate([first.scores, aligned]))
