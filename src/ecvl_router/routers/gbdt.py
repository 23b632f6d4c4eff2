"""Gradient-boosted decision trees (paper, section 5.1: 100 trees) on the concatenated branches.

scikit-learn's histogram-based ``HistGradientBoostingClassifier`` with exactly ``max_iter`` trees
(early stopping off, so the count does not depend on the data size), trained on ``num_threads``
threads. Its state is persisted with ``pickle`` (``routers.estimator``): load only router bundles
from sources you trust.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from ecvl_router.routers.base import positive_int
from ecvl_router.routers.estimator import EstimatorRouter
from ecvl_router.routers.inputs import BRANCHES
from ecvl_router.routers.threads import DEFAULT_THREADS


class GBDTRouter(EstimatorRouter):
    """Boosted trees over text, image and (standardised) statistics side by side."""

    name = "gbdt"

    def __init__(
        self,
        *,
        random_state: int = 0,
        branches: tuple[str, ...] = BRANCHES,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        num_threads: int = DEFAULT_THREADS,
    ) -> None:
        super().__init__(random_state=random_state, branches=branches, num_threads=num_threads)
        self.max_iter = positive_int("max_iter", max_iter)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.max_leaf_nodes = positive_int("max_leaf_nodes", max_leaf_nodes)

    def _estimator(self, labels: np.ndarray, groups: np.ndarray | None) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            early_stopping=False,
            random_state=self.random_state,
        )
