"""Fixed routing policies (paper, Tables 1 and 3): random, all-at-large (cloud) and all-at-small (edge).

They learn nothing and keep a fixed threshold of 0.5 instead of a searched one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers.base import Router
from ecvl_router.routers.inputs import check_features, check_labels


class FixedPolicy(Router):
    """A router without learned parameters and with the fixed threshold 0.5."""

    searches_threshold = False
    fixed_threshold = 0.5

    def iter_fit(self, X: QueryFeatures, y: np.ndarray) -> Iterator[int]:
        check_labels(check_features(X), y)
        yield 0

    def get_state(self) -> None:
        return None

    def set_state(self, state: None) -> None:
        if state is not None:
            raise ValueError(f"router {self.name!r} has no learned state, got {type(state).__name__}")


class RandomRouter(FixedPolicy):
    """p ~ U(0, 1) per query: about half the queries go to the edge at tau 0.5.

    p is a pseudo-random function of the seed and the query's features, so a query gets the same p
    whatever batch it comes in, in training reports and in serving alike.
    """

    name = "random"

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        check_features(X)
        key = self.random_state.to_bytes(8, "little", signed=True)
        p = np.empty(len(X), dtype=np.float64)
        for row in range(len(X)):
            digest = hashlib.blake2b(key=key, digest_size=8)
            for matrix in (X.text, X.image, X.stats):
                digest.update(np.ascontiguousarray(matrix[row], dtype=np.float32).tobytes())
            p[row] = int.from_bytes(digest.digest(), "little") / 2.0**64
        return p


class AllLargeRouter(FixedPolicy):
    """p = 0: every query goes to the cloud model."""

    name = "all-large"

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        return np.zeros(len(check_features(X)))


class AllSmallRouter(FixedPolicy):
    """p = 1: every query goes to the edge model."""

    name = "all-small"

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        return np.ones(len(check_features(X)))
