"""Input handling shared by the learned routers: branch selection, checks and statistics standardisation.

A router sees up to three *branches* of a query's features: the text embedding, the image embedding
(zeros for a query without an image) and the query statistics. The statistics always get one more
column, the ``has_image`` flag, and are standardised with the mean and standard deviation of the
training split; both are part of the router's learned state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecvl_router.features.features import QueryFeatures

BRANCHES: tuple[str, ...] = ("text", "image", "stats")
"""Every branch, in the order in which routers consume them."""


def check_branches(branches: Iterable[str]) -> tuple[str, ...]:
    """The branches as a tuple in canonical order; raises ValueError for an empty, unknown or repeated branch."""
    if isinstance(branches, str):
        raise ValueError(f"branches must be a sequence of branch names such as ({branches!r},), not a string")
    chosen = list(branches)
    if not chosen:
        raise ValueError(f"branches is empty: enable at least one of {', '.join(BRANCHES)}")
    unknown = [branch for branch in chosen if branch not in BRANCHES]
    if unknown:
        raise ValueError(f"unknown branch {unknown[0]!r}; branches are {', '.join(BRANCHES)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"branches {tuple(chosen)} name a branch twice")
    return tuple(branch for branch in BRANCHES if branch in chosen)


def check_features(X: Any, *, role: str = "X") -> QueryFeatures:
    """``X`` itself when it is a non-empty QueryFeatures with finite 2-D feature matrices."""
    if not isinstance(X, QueryFeatures):
        raise TypeError(f"{role} must be QueryFeatures, got {type(X).__name__}")
    if len(X) == 0:
        raise ValueError(f"{role} holds no queries")
    for name in ("text", "image", "stats"):
        matrix = getattr(X, name)
        if np.ndim(matrix) != 2:
            raise ValueError(f"{role}.{name} must be a 2-D matrix, got shape {np.shape(matrix)}")
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{role}.{name} has a non-finite value in row {row} (item {X.item_ids[row]!r})")
    return X


def check_labels(X: QueryFeatures, y: Any) -> np.ndarray:
    """``y`` as a float32 vector of 0/1 labels, one per query of ``X``."""
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be a vector of labels, got shape {labels.shape}")
    if len(labels) != len(X):
        raise ValueError(f"y has {len(labels)} labels but X has {len(X)} queries")
    if not np.isin(labels, (0, 1)).all():
        row = int(np.argmax(~np.isin(labels, (0, 1))))
        raise ValueError(f"y must hold 0/1 labels; row {row} (item {X.item_ids[row]!r}) is {labels[row]!r}")
    return labels.astype(np.float32)


def _stats_with_flag(X: QueryFeatures) -> np.ndarray:
    return np.concatenate([np.asarray(X.stats, dtype=np.float64), np.asarray(X.has_image, dtype=np.float64)[:, None]], axis=1)


@dataclass(frozen=True)
class InputEncoder:
    """Turns QueryFeatures into the float32 matrices of the enabled branches, fitted on a training split.

    ``dims`` holds each enabled branch's width as the router sees it (statistics including the flag).
    """

    branches: tuple[str, ...]
    dims: dict[str, int]
    stats_mean: np.ndarray
    stats_scale: np.ndarray

    @classmethod
    def fit(cls, X: QueryFeatures, branches: Iterable[str]) -> InputEncoder:
        """Record the branch widths and the training mean and standard deviation of the statistics."""
        branches = check_branches(branches)
        stats = _stats_with_flag(X)
        scale = stats.std(axis=0)
        widths = {"text": X.text.shape[1], "image": X.image.shape[1], "stats": stats.shape[1]}
        return cls(
            branches=branches,
            dims={branch: int(widths[branch]) for branch in branches},
            stats_mean=stats.mean(axis=0),
            stats_scale=np.where(scale > 0, scale, 1.0),
        )

    def transform(self, X: QueryFeatures) -> dict[str, np.ndarray]:
        """The enabled branches' matrices (float32), statistics standardised; checks the widths."""
        matrices = {}
        for branch in self.branches:
            matrix = _stats_with_flag(X) if branch == "stats" else getattr(X, branch)
            if matrix.shape[1] != self.dims[branch]:
                flag = 1 if branch == "stats" else 0
                raise ValueError(
                    f"X.{branch} has {matrix.shape[1] - flag} columns but the router was trained on "
                    f"{self.dims[branch] - flag}"
                )
            if branch == "stats":
                matrix = (matrix - self.stats_mean) / self.stats_scale
            matrices[branch] = np.ascontiguousarray(matrix, dtype=np.float32)
        return matrices

    def concatenated(self, X: QueryFeatures) -> np.ndarray:
        """The enabled branches side by side, one row per query (float32)."""
        return np.concatenate(list(self.transform(X).values()), axis=1)

    def state(self) -> dict[str, Any]:
        """Plain Python values (lists, ints, strings) that rebuild this encoder exactly."""
        return {
            "branches": list(self.branches),
            "dims": dict(self.dims),
            "stats_mean": self.stats_mean.tolist(),
            "stats_scale": self.stats_scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> InputEncoder:
        return cls(
            branches=tuple(state["branches"]),
            dims={str(key): int(value) for key, value in state["dims"].items()},
            stats_mean=np.asarray(state["stats_mean"], dtype=np.float64),
            stats_scale=np.asarray(state["stats_scale"], dtype=np.float64),
        )
