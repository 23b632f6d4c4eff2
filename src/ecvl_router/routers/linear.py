"""L2-regularised logistic regression on the standardised, concatenated branches: the frozen encoders'
embeddings with the simplest regularised head.

Every feature is standardised with the training data's mean and standard deviation, and the strength of
the penalty is chosen by stratified ``inner_folds``-fold cross-validation of the log-loss (each group of the
features' ``groups`` in one fold, when they are known) over
``penalties`` values of the inverse strength C, log-spaced from ``c_min`` to ``c_max``
(scikit-learn's ``LogisticRegressionCV``), then refitted on all the training data. A model with one
weight per feature and a penalty chosen on held-out folds, for datasets of a few hundred to a few
thousand queries where a network's best epoch and τ fit noise.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ecvl_router.routers.base import positive_int
from ecvl_router.routers.estimator import EstimatorRouter
from ecvl_router.routers.inner_cv import inner_splits
from ecvl_router.routers.inputs import BRANCHES
from ecvl_router.routers.threads import DEFAULT_THREADS


class LinearRouter(EstimatorRouter):
    """Logistic regression with a cross-validated L2 penalty over text, image and statistics side by side."""

    name = "linear"

    def __init__(
        self,
        *,
        random_state: int = 0,
        branches: tuple[str, ...] = BRANCHES,
        c_min: float = 1e-5,
        c_max: float = 10.0,
        penalties: int = 13,
        inner_folds: int = 5,
        max_iter: int = 1000,
        num_threads: int = DEFAULT_THREADS,
    ) -> None:
        super().__init__(random_state=random_state, branches=branches, num_threads=num_threads)
        if not 0 < c_min <= c_max:
            raise ValueError(f"need 0 < c_min <= c_max, got c_min={c_min!r}, c_max={c_max!r}")
        self.c_min, self.c_max = float(c_min), float(c_max)
        self.penalties = positive_int("penalties", penalties)
        self.inner_folds = positive_int("inner_folds", inner_folds)
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be at least 2, got {inner_folds!r}")
        self.max_iter = positive_int("max_iter", max_iter)

    def _estimator(self, labels: np.ndarray, groups: np.ndarray | None) -> Pipeline:
        grid = np.geomspace(self.c_min, self.c_max, self.penalties)
        folds = min(self.inner_folds, int(np.bincount(labels).min()))
        if folds < 2:  # a class with a single query: no held-out fold can hold it, keep the weakest penalty tried
            return make_pipeline(StandardScaler(), LogisticRegression(C=float(grid[-1]), max_iter=self.max_iter))
        splits = inner_splits(len(labels), folds, self.random_state, labels=labels, groups=groups)
        model = LogisticRegressionCV(Cs=grid, cv=splits, scoring="neg_log_loss", l1_ratios=(0.0,), max_iter=self.max_iter,
                                     use_legacy_attributes=False)
        return make_pipeline(StandardScaler(), model)
