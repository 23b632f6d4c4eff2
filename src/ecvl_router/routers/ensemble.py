"""An ensemble of fitted routers of one kind, averaged, with an optional probability calibration.

Built by out-of-fold training (``ecvl_router.learning.oof``): the members are the routers trained on the inner
folds, and the calibration map is fitted on their out-of-fold predictions. It is never trained directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers.base import Router

CalibrationKind = Literal["none", "platt", "isotonic"]
CALIBRATIONS: tuple[str, ...] = ("none", "platt", "isotonic")
_CALIBRATION_FILE = "calibration.json"
_EPS = 1e-6


@dataclass(frozen=True)
class Calibration:
    """A monotone map of probabilities: identity, Platt scaling on the logit, or isotonic (piecewise linear)."""

    kind: CalibrationKind = "none"
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    @classmethod
    def fit(cls, kind: CalibrationKind, p: np.ndarray, labels: np.ndarray) -> Calibration:
        """The ``kind`` map fitted on predictions ``p`` and their 0/1 ``labels``."""
        if kind == "none" or len(np.unique(labels)) < 2:
            return cls()
        if kind == "platt":
            model = LogisticRegression(C=1e4).fit(_logit(p)[:, None], labels)
            return cls("platt", (float(model.coef_[0, 0]),), (float(model.intercept_[0]),))
        if kind == "isotonic":
            model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, labels)
            return cls("isotonic", tuple(map(float, model.X_thresholds_)), tuple(map(float, model.y_thresholds_)))
        raise ValueError(f"unknown calibration {kind!r}; expected one of {', '.join(CALIBRATIONS)}")

    def __call__(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "platt":
            return 1.0 / (1.0 + np.exp(-(self.x[0] * _logit(p) + self.y[0])))
        if self.kind == "isotonic":
            return np.interp(p, self.x, self.y)
        return p


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class EnsembleRouter(Router):
    """The calibrated mean of its members' P(edge competent)."""

    name = "ensemble"
    trainable = False

    def __init__(self, *, random_state: int = 0) -> None:
        super().__init__(random_state=random_state)
        self._members: list[Router] = []
        self._calibration = Calibration()

    @classmethod
    def of(cls, members: list[Router], calibration: Calibration, *, random_state: int = 0) -> EnsembleRouter:
        """An ensemble of fitted ``members``."""
        if not members:
            raise ValueError("an ensemble needs at least one member")
        ensemble = cls(random_state=random_state)
        ensemble.set_state({"members": list(members), "calibration": calibration})
        return ensemble

    @property
    def members(self) -> list[Router]:
        return list(self._members)

    @property
    def member_name(self) -> str:
        """The kind of router the members are."""
        if not self._members:
            raise self._not_fitted()
        return self._members[0].name

    def iter_fit(self, X: QueryFeatures, y: Any) -> Iterator[int]:
        raise TypeError("an ensemble is assembled from fitted routers (EnsembleRouter.of), not trained")

    def raw_proba(self, X: QueryFeatures) -> np.ndarray:
        """The members' mean probability before calibration."""
        if not self._members:
            raise self._not_fitted()
        return np.mean([member.predict_proba(X) for member in self._members], axis=0)

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        return np.clip(self._calibration(self.raw_proba(X)), 0.0, 1.0)

    @property
    def fitted_pair(self) -> dict[str, Any]:
        """The pair the members were fitted for (routers that predict scores), else empty."""
        return getattr(self._members[0], "fitted_pair", {}) if self._members else {}

    def competence(self, X: QueryFeatures, **pair: Any) -> np.ndarray:
        """The members' mean uncalibrated P(edge competent) for any pair and MES (members that predict scores)."""
        if not self._members or not hasattr(self._members[0], "competence"):
            raise TypeError("the ensemble's members do not predict scores")
        return np.mean([member.competence(X, **pair) for member in self._members], axis=0)

    def get_state(self) -> dict[str, Any]:
        if not self._members:
            raise self._not_fitted()
        return {"members": list(self._members), "calibration": self._calibration}

    def set_state(self, state: dict[str, Any]) -> None:
        self._members = list(state["members"])
        self._calibration = state["calibration"]

    def _write_state(self, state: dict[str, Any], directory: Path) -> None:
        for index, member in enumerate(state["members"]):
            member.save(directory / f"member-{index}")
        calibration = state["calibration"]
        payload = {"members": len(state["members"]), "kind": calibration.kind, "x": calibration.x, "y": calibration.y}
        (directory / _CALIBRATION_FILE).write_text(json.dumps(payload), encoding="utf-8")

    @classmethod
    def _read_state(cls, directory: Path) -> dict[str, Any]:
        from ecvl_router.routers import load_router

        payload = json.loads((directory / _CALIBRATION_FILE).read_text(encoding="utf-8"))
        members = [load_router(directory / f"member-{index}") for index in range(int(payload["members"]))]
        calibration = Calibration(payload["kind"], tuple(payload["x"]), tuple(payload["y"]))
        return {"members": members, "calibration": calibration}
