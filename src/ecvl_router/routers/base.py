"""The router contract: fit on query features and edge-competence labels, give P(edge is competent).

Routers follow scikit-learn's conventions: the constructor stores (and checks) hyperparameters,
``fit`` returns the router, ``predict_proba`` gives probabilities, ``random_state`` seeds everything.
Threshold search, evaluation and persistence of trained bundles are shared code (``ecvl_router.learning.training``,
``ecvl_router.learning.bundle``); a router only knows how to learn, predict and snapshot its own parameters.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.exceptions import NotFittedError

from ecvl_router.features.features import QueryFeatures
from ecvl_router.manifest import write_json_atomic

ROUTER_FILE = "router.json"


class Router(ABC):
    """A binary classifier of edge competence: ``predict_proba`` is P(the edge model is competent).

    A query goes to the edge when ``p >= tau`` (paper, Eq. 3). Learned routers search ``tau`` on
    validation data; fixed policies (``searches_threshold = False``) use ``fixed_threshold``.
    Subclasses implement ``iter_fit``, ``predict_proba``, ``get_state`` and ``set_state``; those with
    learned parameters also override ``_write_state`` / ``_read_state`` to persist them.
    """

    name: ClassVar[str]
    learns_scores: ClassVar[bool] = False
    """True for routers fitted on every model's scores (``ScoreTargets``) instead of one pair's labels."""
    trainable: ClassVar[bool] = True
    """False for routers assembled from fitted ones (the out-of-fold ensemble)."""
    searches_threshold: ClassVar[bool] = True
    fixed_threshold: ClassVar[float | None] = None

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = int(random_state)

    def fit(self, X: QueryFeatures, y: np.ndarray) -> Self:
        """Train on features ``X`` and 0/1 labels ``y`` (1 = edge competent); returns the router."""
        for _ in self.iter_fit(X, y):
            pass
        return self

    @abstractmethod
    def iter_fit(self, X: QueryFeatures, y: np.ndarray) -> Iterator[int]:
        """Train, yielding the epoch index after each epoch; the router predicts after every yield."""

    @property
    def n_epochs(self) -> int:
        """How many epochs ``iter_fit`` yields."""
        return 1

    @abstractmethod
    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        """P(edge competent) per query: float64, shape (n,), values in [0, 1]."""

    @abstractmethod
    def get_state(self) -> Any:
        """A snapshot of the learned parameters that later training does not change."""

    @abstractmethod
    def set_state(self, state: Any) -> None:
        """Restore parameters from ``get_state``'s snapshot (of a router with the same hyperparameters)."""

    def get_params(self) -> dict[str, Any]:
        """The constructors' keyword-only hyperparameters (along the class hierarchy) and their values."""
        names: dict[str, None] = {}
        for cls in type(self).__mro__:
            if "__init__" in vars(cls) and issubclass(cls, Router):
                parameters = inspect.signature(vars(cls)["__init__"]).parameters.values()
                names.update((p.name, None) for p in parameters if p.kind == p.KEYWORD_ONLY)
        return {name: _plain(getattr(self, name)) for name in sorted(names)}

    def save(self, directory: Path) -> None:
        """Write the router into ``directory``: ``router.json`` (name, hyperparameters) and its state."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(directory / ROUTER_FILE, {"router": self.name, "params": self.get_params()})
        self._write_state(self.get_state(), directory)

    @classmethod
    def load(cls, directory: Path) -> Router:
        """A router of this class as ``save`` wrote it into ``directory``."""
        name, params = read_router_spec(directory)
        if name != cls.name:
            raise ValueError(f"{directory}: holds a {name!r} router, not {cls.name!r}")
        router = cls(**params)
        router.set_state(cls._read_state(Path(directory)))
        return router

    def _write_state(self, state: Any, directory: Path) -> None:
        """Persist ``state`` into ``directory`` (nothing to persist by default)."""

    @classmethod
    def _read_state(cls, directory: Path) -> Any:
        """The state ``_write_state`` persisted (None by default)."""
        return None

    def _not_fitted(self) -> NotFittedError:
        return NotFittedError(f"router {self.name!r} is not fitted; call fit() first")

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


def read_router_spec(directory: Path) -> tuple[str, dict[str, Any]]:
    """The router name and hyperparameters recorded in ``directory/router.json``."""
    path = Path(directory) / ROUTER_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        return str(spec["router"]), dict(spec["params"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a saved router ({exc})") from exc


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int; raises ValueError naming the hyperparameter unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
