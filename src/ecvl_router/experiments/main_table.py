"""The main experiment (paper Table 1 and Figure 2): every router on every model pair and scenario."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecvl_router.data.rsd import RSD
from ecvl_router.learning.evaluation import evaluate_decisions, reference_decisions
from ecvl_router.experiments.trained_cache import train_or_load
from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LabelRule
from ecvl_router.learning.routing_task import RoutingTask, build_task
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import TrainedRouter

logger = logging.getLogger(__name__)

MAIN_ROUTERS = ("ecvl", "gbdt", "mlp", "mf", "random", "all-large", "all-small")
ORACLE = "oracle"

StageProgress = Callable[[str, int, int], None]
"""``progress(stage description, done, total)``."""


@dataclass(frozen=True)
class ModelPair:
    """A (cloud, edge) pair of models of a dataset."""

    cloud: str
    edge: str

    @property
    def label(self) -> str:
        return f"{self.cloud} / {self.edge}"

    @classmethod
    def parse(cls, text: str) -> ModelPair:
        """``"large/small"`` → ModelPair(cloud="large", edge="small")."""
        cloud, sep, edge = text.partition("/")
        if not sep or not cloud.strip() or not edge.strip():
            raise ValueError(f"model pair {text!r} must be written CLOUD/EDGE")
        return cls(cloud.strip(), edge.strip())


@dataclass
class PairResult:
    """Test-set outcomes for one model pair: result rows, each router's test probabilities and trained router."""

    pair: ModelPair
    task: RoutingTask
    rows: list[dict[str, Any]] = field(default_factory=list)
    probabilities: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    taus: dict[str, dict[str, float]] = field(default_factory=dict)
    trained: dict[str, TrainedRouter] = field(default_factory=dict)
    trained_from_cache: int = 0

    @property
    def newly_trained(self) -> int:
        """Routers this run trained (not reused from the cache)."""
        return len(self.trained) - self.trained_from_cache


def result_row(pair: ModelPair, router: str, scenario: Scenario, tau: float | None, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One long-format result row."""
    keys = ("apsp", "ca", "ail", "rcs", "accuracy", "pgr", "mean_score", "time_saving", "token_saving")
    return {
        "pair": pair.label,
        "cloud": pair.cloud,
        "edge": pair.edge,
        "router": router,
        "scenario": scenario.name,
        "mes": scenario.mes,
        "tau": np.nan if tau is None else tau,
        **{key: float(metrics[key]) for key in keys if key in metrics},
        "n_test": metrics["n"],
        **extra,
    }


def run_pair(
    rsd: RSD,
    pair: ModelPair,
    features: QueryFeatures,
    scenarios: Sequence[Scenario],
    *,
    routers: Sequence[str] = MAIN_ROUTERS,
    seed: int = 0,
    rule: LabelRule = "mes",
    k: float = 1,
    cache_dir: Path,
    feature_identity: dict[str, Any],
    router_params: dict[str, dict[str, Any]] | None = None,
    holdout_sources: Sequence[str] = (),
    progress: StageProgress | None = None,
    task: RoutingTask | None = None,
) -> PairResult:
    """Train every router on one pair (one run for all scenarios sharing the MES) and evaluate on test.

    ``task`` replaces the task built from ``rule``, ``k``, ``seed`` and ``holdout_sources`` (for example to
    train on other labels over the same split); its MES must be the scenarios'.
    """
    mes_values = {s.mes for s in scenarios}
    if len(mes_values) != 1:
        raise ValueError(f"scenarios of one run must share one MES; got {sorted(mes_values)}")
    mes = mes_values.pop()
    if task is None:
        task = build_task(rsd, pair.edge, pair.cloud, mes=mes, rule=rule, k=k, seed=seed, holdout_sources=holdout_sources)
    elif task.mes != mes or (task.pair.edge, task.pair.cloud) != (pair.edge, pair.cloud):
        raise ValueError(f"the given task ({task.pair.cloud} / {task.pair.edge}, MES {task.mes:g}) does not match "
                         f"{pair.label} at MES {mes:g}")
    task_features = features.select(task.pair.item_ids)
    test = task.part("test")
    view, labels = task.view("test")
    result = PairResult(pair=pair, task=task)
    for router_name in routers:
        stage = f"{pair.label}: {router_name}"
        trained, cached = train_or_load(
            task,
            task_features,
            router_name,
            scenarios,
            cache_dir=cache_dir,
            feature_identity=feature_identity,
            router_params=(router_params or {}).get(router_name),
            progress=(lambda done, total, stage=stage: progress(stage, done, total)) if progress else None,
        )
        result.trained_from_cache += cached
        result.trained[router_name] = trained
        result.probabilities[router_name] = {}
        result.taus[router_name] = {}
        for scenario in scenarios:
            to_edge, p, tau = trained.decide(task_features.take(test), scenario.name)
            result.probabilities[router_name][scenario.name] = p
            result.taus[router_name][scenario.name] = tau
            metrics = evaluate_decisions(to_edge, view, labels, scenario)
            result.rows.append(result_row(pair, router_name, scenario, tau, metrics, best_epoch=trained.choice(scenario.name).epoch, seed=task.seed))
    for scenario in scenarios:
        metrics = evaluate_decisions(reference_decisions(ORACLE, labels), view, labels, scenario)
        result.rows.append(result_row(pair, ORACLE, scenario, None, metrics, seed=task.seed))
    return result
