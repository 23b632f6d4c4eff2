"""Training recipes behind one function: how a learned router is trained on a training set.

- ``split``: the paper's recipe, one validation part that chooses the best epoch and τ per scenario
  (``training.train_router``);
- ``oof``: out-of-fold ensemble, calibrated, τ on out-of-fold predictions, fallback to the better trivial
  policy (``oof``);
- ``bag``: seed bagging of the split recipe, τ on out-of-bag predictions (``bagging``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ecvl_router.learning.bagging import MEMBERS, VALIDATION_SHARE, train_bagged
from ecvl_router.learning.crossval import validation_split
from ecvl_router.learning.oof import INNER_FOLDS, train_out_of_fold
from ecvl_router.learning.training import TrainedRouter, train_router
from ecvl_router.learning.training_set import TrainingSet
from ecvl_router.routers.base import Router
from ecvl_router.routers.ensemble import CalibrationKind
from ecvl_router.scenarios import Scenario

RECIPES: tuple[str, ...] = ("split", "oof", "bag")
"""The recipes, by name (``router:recipe`` in ``evaluate-routers``, ``--recipe`` in ``train``)."""

DEFAULT_ROUTER = "profile"
"""The router ``train`` fits unless told otherwise (docs/evaluation.md, "DynaMath": it ranks best on real data)."""
DEFAULT_RECIPE = "oof"
"""The recipe ``train`` uses unless told otherwise: its fallback keeps a router that does not beat the better
trivial policy out of fold from costing RCS."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RecipeSettings:
    """The settings of every recipe; each reads its own.

    ``validation``: rows of the split recipe's validation part (default: a stratified, grouped
    ``validation_share`` of the training set); ``edge_share``: the split recipe calibrates τ to that edge
    share instead of maximising RCS; ``folds``, ``calibration``, ``fallback_z``: the oof recipe (and
    ``calibration`` the bag's); ``members``, ``member_share``: the bag.
    """

    validation: np.ndarray | None = None
    validation_share: float = 0.25
    edge_share: float | None = None
    folds: int = INNER_FOLDS
    calibration: CalibrationKind = "isotonic"
    fallback_z: float | None = 1.0
    members: int = MEMBERS
    member_share: float = VALIDATION_SHARE


def check_recipe(recipe: str) -> str:
    """``recipe`` if it is known; ValueError naming the recipes otherwise."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; recipes are {', '.join(RECIPES)}")
    return recipe


def train_with_recipe(
    recipe: str,
    make_router: Callable[[int], Router],
    data: TrainingSet,
    scenarios: Sequence[Scenario],
    *,
    seed: int = 0,
    settings: RecipeSettings = RecipeSettings(),
    progress: Progress | None = None,
) -> TrainedRouter:
    """Train ``make_router(seed)`` (and its seeded siblings) on ``data`` for ``scenarios`` with ``recipe``."""
    check_recipe(recipe)
    if recipe == "oof":
        return train_out_of_fold(make_router, data, scenarios, folds=settings.folds, seed=seed,
                                 calibration=settings.calibration, fallback_z=settings.fallback_z, progress=progress)
    if recipe == "bag":
        return train_bagged(make_router, data, scenarios, members=settings.members, seed=seed,
                            share=settings.member_share, calibration=settings.calibration).trained
    if settings.validation is None:
        fit_rows, val_rows = validation_split(data.strata, seed, settings.validation_share, data.groups)
    else:
        val_rows = np.asarray(settings.validation)
        fit_rows = np.setdiff1d(np.arange(len(data)), val_rows)
    fit, val = data.take(fit_rows), data.take(val_rows)
    return train_router(make_router(seed), fit.features, fit.targets, val.features, val.pair, scenarios,
                        edge_share=settings.edge_share, progress=progress)
