"""Seed bagging of the paper's split recipe: an ensemble over seeds and validation parts, τ on out-of-bag predictions.

Member ``k`` of ``members`` is trained with the paper's recipe (``training.train_router``): seed
``seed + k``, a stratified ``share`` of the training data (drawn with seed ``seed + k``) as the
validation part that chooses its best epoch per scenario, the rest to fit. Member 0 is therefore the
router the split recipe trains with ``seed``. Per scenario:

1. every member predicts its own validation part from the state of its best epoch for that scenario;
   a query's out-of-bag prediction is the mean over the members whose validation part held it
   (queries in no validation part, about ``(1 − share) ** members`` of them, are left out);
2. a calibration map (``isotonic`` by default) is fitted on the out-of-bag predictions and τ is searched
   on the calibrated ones;
3. the router decides with the calibrated mean of all members (``EnsembleRouter``), each at its best
   epoch for the scenario.

There is no fallback to a trivial policy (unlike ``ecvl_router.learning.oof``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecvl_router.learning.crossval import validation_split
from ecvl_router.routers.base import Router
from ecvl_router.routers.ensemble import Calibration, CalibrationKind, EnsembleRouter
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training_set import TrainingSet
from ecvl_router.learning.training import EpochResult, ScenarioChoice, TrainedRouter, search_threshold, train_router

MEMBERS = 5
"""Members of a bag."""
VALIDATION_SHARE = 0.25
"""Share of the training data each member holds out to choose its best epoch (the paper's split recipe)."""


@dataclass(frozen=True)
class Bag:
    """A bagged router and what it was built from.

    ``trained`` decides with the calibrated mean of the members and τ per scenario from out-of-bag
    predictions; ``members`` are the members as the split recipe trained them (each with its own τ);
    ``validation`` the rows of each member's validation part; ``out_of_bag`` per scenario the
    uncalibrated out-of-bag prediction of every training query (NaN where no member held it out).
    """

    trained: TrainedRouter
    members: list[TrainedRouter]
    validation: list[np.ndarray]
    out_of_bag: dict[str, np.ndarray]


def train_bagged(
    make_router: Callable[[int], Router],
    data: TrainingSet,
    scenarios: Sequence[Scenario],
    *,
    members: int = MEMBERS,
    seed: int = 0,
    share: float = VALIDATION_SHARE,
    calibration: CalibrationKind = "isotonic",
) -> Bag:
    """Train ``members`` routers (``make_router(seed + k)``) with the split recipe and bag them (module docstring).

    Each member's validation part is stratified by ``data.strata`` and keeps each of ``data.groups`` on one side.
    """
    if members < 1:
        raise ValueError(f"a bag needs at least one member, got {members}")
    X, labels, pair = data.features, np.asarray(data.labels), data.pair
    trained_members: list[TrainedRouter] = []
    validation: list[np.ndarray] = []
    for index in range(members):
        fit_rows, val_rows = validation_split(data.strata, seed + index, share, data.groups)
        fit = data.take(fit_rows)
        trained_members.append(train_router(make_router(seed + index), fit.features, fit.targets,
                                            X.take(val_rows), pair.take(val_rows), scenarios))
        validation.append(val_rows)
    states: dict[int, Any] = {}
    choices: dict[str, ScenarioChoice] = {}
    out_of_bag: dict[str, np.ndarray] = {}
    for scenario in scenarios:
        epochs = tuple(member.choice(scenario.name).epoch for member in trained_members)
        total, count = np.zeros(len(X)), np.zeros(len(X))
        for member, val_rows in zip(trained_members, validation):
            total[val_rows] += member.predict_proba(X.take(val_rows), scenario.name)
            count[val_rows] += 1
        held = count > 0
        p_oob = np.full(len(X), np.nan)
        p_oob[held] = total[held] / count[held]
        out_of_bag[scenario.name] = p_oob
        calibrator = Calibration.fit(calibration, p_oob[held], labels[held])
        rows = np.flatnonzero(held)
        threshold = search_threshold(np.clip(calibrator(p_oob[rows]), 0.0, 1.0), pair.take(rows), scenario)
        key = len(states)
        states[key] = {"members": [copy.deepcopy(member.router_at(epoch)) for member, epoch in zip(trained_members, epochs)],
                       "calibration": calibrator}
        choices[scenario.name] = ScenarioChoice(scenario, key, threshold)
    first = states[0]
    ensemble = EnsembleRouter.of(first["members"], first["calibration"], random_state=seed)
    history = {name: [EpochResult(choice.epoch, choice.tau, choice.rcs)] for name, choice in choices.items()}
    recipe = {"name": "bag", "members": members, "share": share, "calibration": calibration}
    return Bag(TrainedRouter(ensemble, choices, states, history, recipe=recipe), trained_members, validation, out_of_bag)
