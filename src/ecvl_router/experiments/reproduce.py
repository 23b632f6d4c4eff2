"""Every table and figure of the paper on one Response Score Dataset: settings and the experiment runner.

``reproduce_settings`` turns user choices (pairs, seeds, quick, held-out sources, MES) into settings
that fit the dataset; ``run_reproduce`` runs the experiments in order on precomputed features. Trained
routers are cached by their settings, so a second run (or one after an interruption) trains only what
is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ecvl_router.data.rsd import RSD
from ecvl_router.experiments.ablation import run_ablation
from ecvl_router.experiments.context import ExperimentContext, TrainingLedger
from ecvl_router.experiments.cross_domain import DEMO_HOLDOUT_SOURCES, default_holdout_sources, run_cross_domain
from ecvl_router.experiments.dataset_analysis import DatasetAnalysis, analyse_dataset
from ecvl_router.experiments.label_strategies import LabelStrategy, paper_strategies, run_label_strategies
from ecvl_router.experiments.main_table import MAIN_ROUTERS, ModelPair, PairResult, StageProgress
from ecvl_router.experiments.mes_sweep import run_mes_sweep
from ecvl_router.experiments.router_comparison import DEFAULT_POLICIES, Comparison, compare_routers
from ecvl_router.experiments.router_latency import RoutingLatency, measure_routing_latency
from ecvl_router.experiments.scale import from_paper_scale, mes_grid, paper_unit
from ecvl_router.experiments.validation_alignment import AlignmentCurve, alignment_curves
from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.guarantee_check import GuaranteeCheck, run_guarantee_check
from ecvl_router.learning.router_cv import CVSettings, PolicySpec
from ecvl_router.scenarios import DEFAULT_MES, SCENARIOS, Scenario

logger = logging.getLogger(__name__)

NEURAL_ROUTERS = ("ecvl", "mlp", "mf")
QUICK_EPOCHS = 10
QUICK_TREES = 30
LATENCY_QUERIES = 40
QUICK_LATENCY_QUERIES = 8

EXPERIMENTS = (
    "Dataset analysis (Figures 3–7)",
    "Table 1: every router on every pair (and Figures 2, 8)",
    "Table 2: routing latency",
    "Table 3: branch ablation",
    "Table 4: label strategies",
    "Figure 9: validation–test alignment",
    "Figures 11–12: MES sweep",
    "Table 8: cross-domain generalisation",
    "Cross-validated router comparison",
    "Quality guarantee on fresh data",
)
QUICK_COMPARISON = ("linear:oof", "ecvl-multi:oof", "gbdt", "random")
"""The routers a quick reproduction compares (the full one compares ``DEFAULT_POLICIES``)."""
GUARANTEE_DROPS = (0.02, 0.05, 0.10)
GUARANTEE_CONFIDENCES = (0.8, 0.9, 0.95)


@dataclass(frozen=True)
class ReproduceSettings:
    """What a reproduction runs: pairs (the first is the main pair of the single-pair experiments), the seeds of
    Table 1 (``seeds``) and of the other trained experiments (``other_seeds``: Tables 3, 4 and 8, the MES sweep),
    the MES, the MES sweep's points, the held-out sources, the label strategies, router hyperparameters and the
    number of timed queries. ``notes`` say how dataset-dependent defaults were chosen."""

    pairs: tuple[ModelPair, ...]
    seeds: tuple[int, ...]
    other_seeds: tuple[int, ...]
    quick: bool
    mes: float
    mes_points: tuple[float, ...]
    holdout_sources: tuple[str, ...]
    strategies: tuple[LabelStrategy, ...]
    router_params: dict[str, dict[str, Any]]
    latency_queries: int
    comparison_policies: tuple[str, ...] = DEFAULT_POLICIES
    comparison_folds: int = 5
    comparison_repeats: int = 3
    guarantee_router: str = "gbdt"
    guarantee_repetitions: int = 200
    notes: tuple[str, ...] = ()

    @property
    def main_pair(self) -> ModelPair:
        return self.pairs[0]

    def scenarios(self) -> tuple[Scenario, ...]:
        """The paper's three scenarios (RCS1/2/3) at this reproduction's MES."""
        return tuple(s.with_mes(self.mes) for s in SCENARIOS.values())

    def describe(self) -> dict[str, Any]:
        """Plain values for the report and its manifest."""
        return {
            "pairs": [p.label for p in self.pairs],
            "main_pair": self.main_pair.label,
            "seeds": list(self.seeds),
            "other_seeds": list(self.other_seeds),
            "quick": self.quick,
            "mes": self.mes,
            "mes_points": list(self.mes_points),
            "holdout_sources": list(self.holdout_sources),
            "label_strategies": [{"name": s.name, "rule": s.rule, "k": s.k} for s in self.strategies],
            "router_params": self.router_params,
            "latency_queries": self.latency_queries,
            "comparison": {"routers": list(self.comparison_policies), "folds": self.comparison_folds,
                           "repeats": self.comparison_repeats},
            "guarantee": {"router": self.guarantee_router, "max_quality_drop": list(GUARANTEE_DROPS),
                          "confidence": list(GUARANTEE_CONFIDENCES), "repetitions": self.guarantee_repetitions},
            "scenarios": [s.model_dump() for s in self.scenarios()],
        }


def default_pairs(rsd: RSD) -> tuple[tuple[ModelPair, ...], str]:
    """The demo's three pairs on the demo benchmark; the only pair of a two-model dataset (the model with the
    higher mean score as cloud); otherwise a ValueError asking for ``--pairs``."""
    from ecvl_router.data.demo import DEMO_PAIRS, is_demo_output

    models = rsd.models
    if is_demo_output(rsd.root) and all(m in models for pair in DEMO_PAIRS for m in pair):
        return tuple(ModelPair(cloud, edge) for cloud, edge in DEMO_PAIRS), "the demo benchmark's three pairs (large/small, mid/small, large/mid)"
    if len(models) == 2:
        means = rsd.responses.groupby("model")["score"].mean()
        cloud, edge = sorted(models, key=lambda m: -means[m])
        return (ModelPair(cloud, edge),), "the dataset's only pair, the model with the higher mean score as cloud"
    raise ValueError(f"dataset {rsd.info.name!r} has {len(models)} models ({', '.join(models)}); name the pairs to compare "
                     "as CLOUD/EDGE,… (--pairs)")


def default_holdout(rsd: RSD) -> tuple[tuple[str, ...], str]:
    """Held-out sources for Table 8 when none are given, and why."""
    from ecvl_router.data.demo import is_demo_output

    if is_demo_output(rsd.root) and set(DEMO_HOLDOUT_SOURCES) <= set(rsd.sources):
        return DEMO_HOLDOUT_SOURCES, ("the demo families mirroring the paper's held-out ChartQA, WildVision and MMMU "
                                      "(MMVet has no demo counterpart)")
    chosen = default_holdout_sources(rsd)
    return chosen, "the smallest sources covering at least 20 % of the items (the paper held out about 22 %)"


def reproduce_settings(
    rsd: RSD,
    *,
    pairs: Sequence[ModelPair] | None = None,
    seeds: int = 3,
    other_seeds: int = 1,
    quick: bool = False,
    holdout_sources: Sequence[str] | None = None,
    mes: float | None = None,
    epochs: int | None = None,
) -> ReproduceSettings:
    """Settings for ``rsd``: ``seeds`` seeds (0, 1, …) for Table 1 and the first ``other_seeds`` of them for the
    other trained experiments. Quick: one seed, ``QUICK_EPOCHS`` epochs for the neural routers and ``QUICK_TREES``
    boosting rounds for gbdt, every other MES point, fewer timed queries."""
    if seeds < 1 or other_seeds < 1:
        raise ValueError(f"seeds and other_seeds must be at least 1, got {seeds} and {other_seeds}")
    notes = []
    if pairs:
        chosen_pairs = tuple(pairs)
    else:
        chosen_pairs, why = default_pairs(rsd)
        notes.append(f"Model pairs: {why}.")
    for pair in chosen_pairs:
        for model in (pair.cloud, pair.edge):
            if model not in rsd.models:
                raise ValueError(f"pair {pair.cloud}/{pair.edge}: model {model!r} is not in dataset {rsd.info.name!r}; "
                                 f"models: {', '.join(rsd.models)}")
    low, high = rsd.info.score_min, rsd.info.score_max
    if mes is None:
        mes = from_paper_scale(DEFAULT_MES, low, high)
        if (low, high) != (1, 10):
            notes.append(f"MES {mes:g}: the paper's MES {DEFAULT_MES:g} on its 1–10 scale, carried to this scale [{low:g}, {high:g}].")
    if not low <= mes <= high:
        raise ValueError(f"MES {mes:g} is outside the dataset's score scale [{low:g}, {high:g}]")
    if holdout_sources:
        unknown = sorted(set(holdout_sources) - set(rsd.sources))
        if unknown:
            raise ValueError(f"held-out sources not in dataset {rsd.info.name!r}: {', '.join(unknown)}; "
                             f"sources: {', '.join(rsd.sources)}")
        holdout = tuple(holdout_sources)
    else:
        holdout, why = default_holdout(rsd)
        notes.append(f"Held-out sources of Table 8 ({', '.join(holdout)}): {why}.")
    points = mes_grid(rsd.responses["score"], low, high)
    unit = paper_unit(low, high)
    n_epochs = epochs or (QUICK_EPOCHS if quick else None)
    router_params: dict[str, dict[str, Any]] = {name: {"epochs": n_epochs} for name in NEURAL_ROUTERS} if n_epochs else {}
    if quick:
        router_params["gbdt"] = {"max_iter": QUICK_TREES}
    return ReproduceSettings(
        pairs=chosen_pairs,
        seeds=tuple(range(1 if quick else seeds)),
        other_seeds=tuple(range(1 if quick else min(seeds, other_seeds))),
        quick=quick,
        mes=float(mes),
        mes_points=points[::2] if quick else points,
        holdout_sources=holdout,
        strategies=paper_strategies(unit),
        router_params=router_params,
        latency_queries=QUICK_LATENCY_QUERIES if quick else LATENCY_QUERIES,
        comparison_policies=QUICK_COMPARISON if quick else DEFAULT_POLICIES,
        comparison_folds=3 if quick else 5,
        comparison_repeats=1 if quick else 3,
        guarantee_repetitions=50 if quick else 200,
        notes=tuple(notes),
    )


@dataclass
class ReproduceResults:
    """Everything the report shows. ``main[seed]`` holds Table 1's PairResults in pair order."""

    settings: ReproduceSettings
    analysis: DatasetAnalysis | None = None
    main: dict[int, list[PairResult]] = field(default_factory=dict)
    latency: RoutingLatency | None = None
    latency_skipped: str = ""
    ablation_rows: list[dict[str, Any]] = field(default_factory=list)
    strategy_rows: list[dict[str, Any]] = field(default_factory=list)
    alignment: list[AlignmentCurve] = field(default_factory=list)
    sweep_rows: list[dict[str, Any]] = field(default_factory=list)
    cross_domain_rows: list[dict[str, Any]] = field(default_factory=list)
    comparison: Comparison | None = None
    guarantee: GuaranteeCheck | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    ledger: TrainingLedger = field(default_factory=TrainingLedger)

    @property
    def main_rows(self) -> list[dict[str, Any]]:
        """Table 1's rows over every seed and pair."""
        return [row for results in self.main.values() for result in results for row in result.rows]

    @property
    def first_seed_results(self) -> list[PairResult]:
        """Table 1's PairResults of the first seed (the figures' runs)."""
        return self.main[self.settings.seeds[0]]

    def table(self, name: str) -> pd.DataFrame:
        """The long-format rows of one of ``TABLES``: main (Table 1), ablation, strategy, sweep or cross_domain."""
        if name not in TABLES:
            raise ValueError(f"unknown result table {name!r}; tables are {', '.join(TABLES)}")
        return pd.DataFrame(self.main_rows if name == "main" else getattr(self, f"{name}_rows"))


TABLES = ("main", "ablation", "strategy", "sweep", "cross_domain")

ExperimentProgress = Callable[[str, int, int], None]
"""``on_experiment(name, index, total)``: called as each experiment starts (index from 1)."""


def run_reproduce(
    rsd: RSD,
    features: QueryFeatures,
    settings: ReproduceSettings,
    *,
    cache_dir: Path,
    feature_identity: dict[str, Any],
    extractor: FeatureExtractor | None = None,
    on_experiment: ExperimentProgress | None = None,
    progress: StageProgress | None = None,
) -> ReproduceResults:
    """Run every experiment on ``features`` (covering the dataset's items).

    Table 2 needs the ``extractor`` that produced ``features`` (it times it) and items with images; without them
    it is skipped and ``latency_skipped`` says why.
    """
    context = ExperimentContext(rsd, features, settings.scenarios(), Path(cache_dir), feature_identity,
                                router_params=settings.router_params, progress=progress)
    main_pair, seeds, scenarios = settings.main_pair, settings.other_seeds, list(context.scenarios)
    results = ReproduceResults(settings=settings, ledger=context.ledger)
    announced = iter(range(1, len(EXPERIMENTS) + 1))

    @contextmanager
    def experiment(name: str) -> Iterator[None]:
        if on_experiment is not None:
            on_experiment(name, next(announced), len(EXPERIMENTS))
        started = time.perf_counter()
        yield
        results.seconds[name] = time.perf_counter() - started
        logger.info("%s: %.1f s", name, results.seconds[name])

    with experiment(EXPERIMENTS[0]):
        results.analysis = analyse_dataset(rsd)
    with experiment(EXPERIMENTS[1]):
        for seed in settings.seeds:
            results.main[seed] = [context.run_pair(pair, routers=MAIN_ROUTERS, seed=seed, label=f"Table 1 · seed {seed}")
                                  for pair in settings.pairs]
    with experiment(EXPERIMENTS[2]):
        if extractor is None:
            results.latency_skipped = "this run was given precomputed features and no feature extractor to time"
        elif rsd.items["image"].isna().all():
            results.latency_skipped = "the dataset has no item with an image to time the image encoder on"
        else:
            models = list(dict.fromkeys(m for pair in settings.pairs for m in (pair.edge, pair.cloud)))
            results.latency = measure_routing_latency(
                rsd, extractor, results.first_seed_results[0].trained["ecvl"], scenarios[0].name, models,
                queries=settings.latency_queries,
                progress=(lambda done, total: progress("Table 2 · timed queries", done, total)) if progress else None,
            )
    with experiment(EXPERIMENTS[3]):
        results.ablation_rows = run_ablation(context, main_pair, seeds)
    with experiment(EXPERIMENTS[4]):
        results.strategy_rows = run_label_strategies(context, main_pair, settings.strategies, seeds)
    with experiment(EXPERIMENTS[5]):
        results.alignment = alignment_curves(results.first_seed_results[0], features, scenarios)
    with experiment(EXPERIMENTS[6]):
        results.sweep_rows = run_mes_sweep(context, main_pair, settings.mes_points, seeds)
    with experiment(EXPERIMENTS[7]):
        results.cross_domain_rows = run_cross_domain(context, main_pair, settings.holdout_sources, seeds)
    with experiment(EXPERIMENTS[8]):
        results.comparison = compare_routers(
            rsd, features, edge=main_pair.edge, cloud=main_pair.cloud, scenarios=scenarios,
            policies=[PolicySpec.parse(text) for text in settings.comparison_policies],
            n_folds=settings.comparison_folds, n_repeats=settings.comparison_repeats,
            settings=CVSettings(seed=settings.seeds[0], router_params=settings.router_params,
                                inner_folds=3 if settings.quick else 5),
            progress=(lambda done, total: progress("comparison · folds", done, total)) if progress else None,
        )
    with experiment(EXPERIMENTS[9]):
        results.guarantee = run_guarantee_check(
            rsd, features, edge=main_pair.edge, cloud=main_pair.cloud, mes=settings.mes, router=settings.guarantee_router,
            router_params=settings.router_params.get(settings.guarantee_router), max_drops=GUARANTEE_DROPS,
            confidences=GUARANTEE_CONFIDENCES, reference=scenarios[0], repetitions=settings.guarantee_repetitions,
            seed=settings.seeds[0],
            fit_progress=(lambda done, total: progress("guarantee · out-of-fold fit", done, total)) if progress else None,
            check_progress=(lambda done, total: progress("guarantee · settings checked", done, total)) if progress else None,
        )
    return results
