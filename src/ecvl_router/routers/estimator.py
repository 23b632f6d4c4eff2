"""Routers that wrap a scikit-learn classifier fitted on the concatenated branches.

A subclass names itself and builds its estimator (``_estimator``); fitting, the constant fallback when
every training label is the same, prediction and the state are shared here. The state is persisted with
``pickle``: loading a pickle can execute code, so load only router bundles from sources you trust.
"""

from __future__ import annotations

import logging
import pickle
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers.base import Router, positive_int
from ecvl_router.routers.inputs import BRANCHES, InputEncoder, check_branches, check_features, check_labels
from ecvl_router.routers.threads import DEFAULT_THREADS, limited_threads

logger = logging.getLogger(__name__)

STATE_FILE = "state.pkl"


class EstimatorRouter(Router):
    """P(edge competent) from a scikit-learn classifier over text, image and (standardised) statistics side by side."""

    def __init__(self, *, random_state: int = 0, branches: tuple[str, ...] = BRANCHES, num_threads: int = DEFAULT_THREADS) -> None:
        super().__init__(random_state=random_state)
        self.branches = check_branches(branches)
        self.num_threads = positive_int("num_threads", num_threads)
        self._encoder: InputEncoder | None = None
        self._model: BaseEstimator | float | None = None

    @abstractmethod
    def _estimator(self, labels: np.ndarray, groups: np.ndarray | None) -> BaseEstimator:
        """A new, unfitted classifier (with ``predict_proba``) for the training ``labels`` (both classes present) of
        queries in ``groups`` (None: unknown), which an inner cross-validation keeps whole."""

    def iter_fit(self, X: QueryFeatures, y: np.ndarray) -> Iterator[int]:
        check_features(X)
        labels = check_labels(X, y).astype(np.int64)
        self._encoder = InputEncoder.fit(X, self.branches)
        if len(np.unique(labels)) == 1:
            logger.warning("%s: every training label is %d; the router predicts that constant", self.name, labels[0])
            self._model = float(labels[0])
        else:
            with limited_threads(self.num_threads):
                self._model = self._estimator(labels, X.groups).fit(self._encoder.concatenated(X), labels)
        yield 0

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        if self._model is None or self._encoder is None:
            raise self._not_fitted()
        rows = self._encoder.concatenated(check_features(X))
        if isinstance(self._model, float):
            return np.full(len(rows), self._model)
        return self._model.predict_proba(rows)[:, 1].astype(np.float64)

    def get_state(self) -> dict[str, Any]:
        if self._model is None or self._encoder is None:
            raise self._not_fitted()
        return {"inputs": self._encoder.state(), "model": self._model}

    def set_state(self, state: dict[str, Any]) -> None:
        encoder = InputEncoder.from_state(state["inputs"])
        if encoder.branches != self.branches:
            raise ValueError(f"state was trained on branches {encoder.branches}, this router uses {self.branches}")
        self._encoder, self._model = encoder, state["model"]

    def _write_state(self, state: dict[str, Any], directory: Path) -> None:
        with open(directory / STATE_FILE, "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def _read_state(cls, directory: Path) -> dict[str, Any]:
        with open(directory / STATE_FILE, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - a bundle is trusted input, see the module docstring
