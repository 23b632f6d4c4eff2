"""What the experiments of a reproduction share: the dataset, its features, the training settings and cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecvl_router.data.rsd import RSD
from ecvl_router.experiments.main_table import ModelPair, PairResult, StageProgress, run_pair
from ecvl_router.features.features import QueryFeatures
from ecvl_router.scenarios import Scenario


@dataclass
class TrainingLedger:
    """How many routers the experiments trained and how many they reused from the cache."""

    trained: int = 0
    reused: int = 0

    def record(self, result: PairResult) -> None:
        self.trained += result.newly_trained
        self.reused += result.trained_from_cache


@dataclass
class ExperimentContext:
    """The dataset and features every experiment runs on, with the router settings and the router cache.

    ``router_params`` holds hyperparameters per router name (e.g. fewer epochs for a quick run);
    ``progress(stage, done, total)`` receives each training's epochs; ``ledger`` counts trainings.
    """

    rsd: RSD
    features: QueryFeatures
    scenarios: tuple[Scenario, ...]
    cache_dir: Path
    feature_identity: dict[str, Any]
    router_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: StageProgress | None = None
    ledger: TrainingLedger = field(default_factory=TrainingLedger)

    def run_pair(
        self,
        pair: ModelPair,
        *,
        routers: Sequence[str],
        seed: int,
        label: str,
        scenarios: Sequence[Scenario] | None = None,
        router_params: dict[str, dict[str, Any]] | None = None,
        **options: Any,
    ) -> PairResult:
        """``main_table.run_pair`` with this context's data and settings; ``label`` prefixes progress stages.

        ``router_params`` entries are merged over the context's for this call (e.g. an ablation's branches).
        """
        params = {name: dict(values) for name, values in self.router_params.items()}
        for name, values in (router_params or {}).items():
            params[name] = {**params.get(name, {}), **values}
        progress = self.progress
        result = run_pair(
            self.rsd,
            pair,
            self.features,
            list(scenarios or self.scenarios),
            routers=routers,
            seed=seed,
            cache_dir=self.cache_dir,
            feature_identity=self.feature_identity,
            router_params=params,
            progress=(lambda stage, done, total: progress(f"{label} · {stage}", done, total)) if progress else None,
            **options,
        )
        self.ledger.record(result)
        return result
