"""The training loop and threshold search every router shares (paper, section 4.2.2).

After every epoch the router predicts the validation split once; for each scenario a grid search over
the threshold tau picks tau* with the highest validation RCS (RCS*), and each scenario keeps the epoch
with the highest RCS* together with its tau* and a snapshot of the router's parameters. Scenarios whose
labels are the same (same MES and label rule) therefore share one training run.
Evaluation on a test split and the reference policies (all-large, all-small, the oracle) live in
``ecvl_router.learning.evaluation``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ecvl_router.data.rsd import PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.risk_control import guaranteed_threshold
from ecvl_router.learning.thresholds import (
    ThresholdChoice,
    choice_at,
    rcs_threshold,
    threshold_for_edge_share,
)
from ecvl_router.routers.base import Router
from ecvl_router.routers.multi import ScoreTargets
from ecvl_router.scenarios import Scenario

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class EpochResult:
    """One scenario's validation result after one epoch."""

    epoch: int
    tau: float
    rcs: float


@dataclass(frozen=True)
class ScenarioChoice:
    """What training keeps for one scenario: the best epoch, its tau* and validation RCS* and metrics.

    ``fallback`` names the trivial policy (``all-large`` or ``all-small``) the scenario fell back to
    because the router did not beat it on held-out data (tau then sends every query one way).
    ``tau_by_mes`` (routers that predict scores) maps each score level to the tau searched for the
    scenario's weights at that MES, so that the router can serve an MES it was not trained at.
    """

    scenario: Scenario
    epoch: int
    threshold: ThresholdChoice
    fallback: str | None = None
    tau_by_mes: dict[float, float] | None = None

    def tau_at(self, mes: float) -> float:
        """tau for ``mes``: the entry of the lowest score level at or above it (the same labels for all MES up to it)."""
        if mes == self.scenario.mes or self.fallback is not None:
            return self.tau
        if not self.tau_by_mes:
            raise ValueError(f"scenario {self.scenario.name!r} was trained at MES {self.scenario.mes:g} only; "
                             "serving another MES needs a router that predicts scores (ecvl-multi)")
        levels = sorted(self.tau_by_mes)
        above = [level for level in levels if level >= mes]
        return self.tau_by_mes[above[0] if above else levels[-1]]

    @property
    def tau(self) -> float:
        return self.threshold.tau

    @property
    def rcs(self) -> float:
        return self.threshold.rcs


def search_threshold(
    p_val: ArrayLike, pair_val: PairView, scenario: Scenario, grid: ArrayLike | None = None
) -> ThresholdChoice:
    """The threshold ``scenario`` needs: ``risk_control.guaranteed_threshold`` for a guaranteed scenario (its
    default grid is the finer ``risk_control.GUARANTEE_GRID``), else ``thresholds.rcs_threshold``."""
    if scenario.guaranteed:
        return guaranteed_threshold(p_val, pair_val, scenario, grid)
    return rcs_threshold(p_val, pair_val, scenario, grid)


class TrainedRouter:
    """A router trained for several scenarios: each scenario's best epoch (state) and tau*.

    ``choices`` maps scenario name to its ScenarioChoice; ``history`` to the per-epoch validation
    results; ``states`` holds one snapshot per distinct best epoch; ``recipe`` says how it was trained
    (``{"name": "split"}``: best epoch and tau on one validation split; ``oof``: see ``ecvl_router.learning.oof``);
    ``manifest`` is set for a loaded bundle.
    """

    def __init__(
        self,
        router: Router,
        choices: dict[str, ScenarioChoice],
        states: dict[int, Any],
        history: dict[str, list[EpochResult]],
        *,
        edge_share: float | None = None,
        recipe: dict[str, Any] | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        missing = {choice.epoch for choice in choices.values()} - set(states)
        if missing:
            raise ValueError(f"no router state for epoch {min(missing)}")
        self.router = router
        self.choices = choices
        self.states = states
        self.history = history
        self.edge_share = edge_share
        self.recipe = recipe or {"name": "split"}
        self.manifest = manifest
        self._loaded_epoch: int | None = None

    @property
    def label(self) -> str:
        """The router kind and, unless it is the paper's split recipe, the recipe: ``ecvl`` or ``ecvl-multi:oof``."""
        kind = getattr(self.router, "member_name", self.router.name)
        return kind if self.recipe.get("name", "split") == "split" else f"{kind}:{self.recipe['name']}"

    @property
    def scenario_names(self) -> list[str]:
        return list(self.choices)

    def choice(self, scenario_name: str) -> ScenarioChoice:
        """The ScenarioChoice of ``scenario_name``; KeyError lists the trained scenarios."""
        try:
            return self.choices[scenario_name]
        except KeyError:
            raise KeyError(
                f"router was not trained for scenario {scenario_name!r}; it knows {', '.join(self.choices)}"
            ) from None

    def router_at(self, epoch: int) -> Router:
        """The router with the state kept from ``epoch`` (restored only when another one is loaded)."""
        if epoch not in self.states:
            raise KeyError(f"no router state kept for epoch {epoch}; kept: {sorted(self.states)}")
        if self._loaded_epoch != epoch:
            self.router.set_state(self.states[epoch])
            self._loaded_epoch = epoch
        return self.router

    def predict_proba(self, X: QueryFeatures, scenario_name: str) -> np.ndarray:
        """P(edge competent) from the state kept for ``scenario_name``."""
        return self.router_at(self.choice(scenario_name).epoch).predict_proba(X)

    def decide(
        self, X: QueryFeatures, scenario_name: str, *, mes: float | None = None, edge: str | None = None, cloud: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(to_edge, p, tau) for the queries of ``X`` under ``scenario_name``.

        ``mes``, ``edge`` and ``cloud`` override the scenario's MES and the trained pair; only routers that
        predict scores (``competence``) serve them, with the tau of ``ScenarioChoice.tau_at``.
        """
        choice = self.choice(scenario_name)
        pair = (choice.scenario.mes, *self.trained_pair())
        wanted = (choice.scenario.mes if mes is None else mes, edge or pair[1], cloud or pair[2])
        if wanted == pair:
            p = self.predict_proba(X, scenario_name)
            return p >= choice.tau, p, choice.tau
        router = self.router_at(choice.epoch)
        if not getattr(router, "fitted_pair", None):
            raise ValueError(f"a {self.label} router decides for its trained pair and MES only; ecvl-multi serves any")
        tau = choice.tau_at(wanted[0])
        p = router.competence(X, edge=wanted[1], cloud=wanted[2], mes=wanted[0], rule="mes")
        return p >= tau, p, tau

    def trained_pair(self) -> tuple[str | None, str | None]:
        """(edge, cloud) of the task the router was trained on, as its manifest or its router records them."""
        task = ((self.manifest or {}).get("settings") or {}).get("task") or {}
        fitted = getattr(self.router, "fitted_pair", {})
        return task.get("edge", fitted.get("edge")), task.get("cloud", fitted.get("cloud"))


def train_router(
    router: Router,
    X_train: QueryFeatures,
    y_train: ArrayLike | ScoreTargets,
    X_val: QueryFeatures,
    pair_val: PairView,
    scenarios: Sequence[Scenario],
    *,
    edge_share: float | None = None,
    grid: ArrayLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedRouter:
    """Train ``router`` once and keep, per scenario, the epoch and tau with the best validation RCS.

    ``y_train`` are the labels shared by all ``scenarios`` (every model's scores, ScoreTargets, for the
    multi-model router). A fixed policy keeps its fixed tau. With
    ``edge_share``, tau is instead calibrated each epoch so that this share of validation queries goes
    to the edge (``threshold_for_edge_share``), and each scenario keeps the epoch with the best RCS at
    that tau. A guaranteed scenario always takes its tau from risk control on the validation split
    (``edge_share`` and fixed thresholds do not apply to it) and keeps the epoch with the best RCS at that
    tau. Of epochs with equal RCS*, the earliest is kept. ``progress(done, total)`` is called after
    each epoch with the number of epochs completed.
    """
    _check_scenarios(scenarios)
    _check_alignment(X_val, pair_val)
    if edge_share is not None and not 0 <= edge_share <= 1:
        raise ValueError(f"edge share must lie in [0, 1], got {edge_share!r}")
    best: dict[str, ScenarioChoice] = {}
    states: dict[int, Any] = {}
    history: dict[str, list[EpochResult]] = {s.name: [] for s in scenarios}
    targets = y_train if isinstance(y_train, ScoreTargets) else np.asarray(y_train)
    for epoch in router.iter_fit(X_train, targets):
        p_val = router.predict_proba(X_val)
        improved = False
        for scenario in scenarios:
            threshold = _threshold(router, p_val, pair_val, scenario, edge_share, grid)
            history[scenario.name].append(EpochResult(epoch, threshold.tau, threshold.rcs))
            if scenario.name not in best or threshold.rcs > best[scenario.name].threshold.rcs:
                best[scenario.name] = ScenarioChoice(scenario, epoch, threshold)
                improved = True
        if improved:
            states[epoch] = router.get_state()
            kept = {choice.epoch for choice in best.values()}
            states = {e: state for e, state in states.items() if e in kept}
        logger.debug(
            "%s epoch %d/%d: %s",
            router.name,
            epoch + 1,
            router.n_epochs,
            ", ".join(f"{r[-1].rcs:.4f} RCS* at tau {r[-1].tau:.2f} ({name})" for name, r in history.items()),
        )
        if progress is not None:
            progress(epoch + 1, router.n_epochs)
    if not best:
        raise RuntimeError(f"router {router.name!r} trained no epoch")
    if router.learns_scores and edge_share is None:
        for name, choice in best.items():
            router.set_state(states[choice.epoch])
            by_level = router.competence_by_level(X_val, edge=pair_val.edge, cloud=pair_val.cloud)
            best[name] = replace(choice, tau_by_mes=mes_thresholds(by_level, pair_val, choice.scenario))
    return TrainedRouter(router, best, states, history, edge_share=edge_share)


def mes_thresholds(p_by_level: dict[float, np.ndarray], pair: PairView, scenario: Scenario) -> dict[float, float]:
    """tau per score level: searched on that level's P(edge competent) for the scenario's weights at that MES."""
    return {level: search_threshold(p, pair, scenario.with_mes(level)).tau for level, p in p_by_level.items()}


def _threshold(
    router: Router, p_val: np.ndarray, pair_val: PairView, scenario: Scenario, edge_share: float | None, grid: ArrayLike | None
) -> ThresholdChoice:
    if scenario.guaranteed:
        return search_threshold(p_val, pair_val, scenario, grid)
    if not router.searches_threshold:
        tau = router.fixed_threshold if scenario.cloud_allowed else 0.0
        return choice_at(p_val, pair_val, scenario, tau)
    if edge_share is not None and scenario.cloud_allowed:
        return choice_at(p_val, pair_val, scenario, threshold_for_edge_share(p_val, edge_share))
    return search_threshold(p_val, pair_val, scenario, grid)


def _check_scenarios(scenarios: Sequence[Scenario]) -> None:
    if not scenarios:
        raise ValueError("train_router needs at least one scenario")
    names = [s.name for s in scenarios]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"scenario names must be unique; {repeated[0]!r} appears twice")


def _check_alignment(X_val: QueryFeatures, pair_val: PairView) -> None:
    if len(X_val) != len(pair_val):
        raise ValueError(f"validation features have {len(X_val)} queries but the validation pair has {len(pair_val)}")
    mismatch = np.flatnonzero(np.asarray(X_val.item_ids) != np.asarray(pair_val.item_ids))
    if len(mismatch):
        row = int(mismatch[0])
        raise ValueError(
            f"validation features and pair are not aligned: row {row} is item {X_val.item_ids[row]!r} "
            f"in the features and {pair_val.item_ids[row]!r} in the pair"
        )
