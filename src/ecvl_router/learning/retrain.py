"""Glue for retraining: a served run and a judged capture dataset become a champion-vs-challenger contest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
import numpy as np

from ecvl_router.data.rsd import RSD
from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.labels import competence_labels
from ecvl_router.learning.champion import Contest
from ecvl_router.learning.crossval import fold_strata
from ecvl_router.learning.oof import INNER_FOLDS
from ecvl_router.learning.recipes import RecipeSettings, train_with_recipe
from ecvl_router.learning.routing_task import pair_score_targets, score_targets
from ecvl_router.learning.runs import RunContext, rsd_features
from ecvl_router.learning.training import TrainedRouter
from ecvl_router.learning.training_set import TrainingSet, concat_training_sets, take_targets
from ecvl_router.routers.base import Router
from ecvl_router.routers.ensemble import EnsembleRouter
from ecvl_router.scenarios import Scenario

Progress = Callable[[int, int], None]


def router_factory(trained: TrainedRouter) -> Callable[[int], Router]:
    """``make(seed)``: a fresh, unfitted router of the kind ``trained`` holds (an ensemble's member kind)."""
    router = trained.router
    if isinstance(router, EnsembleRouter):
        router = router.members[0]
    params = router.get_params()
    kind = type(router)
    return lambda seed: kind(**{**params, "random_state": seed})


def recipe_settings(trained: TrainedRouter) -> tuple[str, RecipeSettings]:
    """The recipe ``trained`` was trained with and its settings."""
    recipe = dict(trained.recipe)
    name = recipe.pop("name", "split")
    if name == "oof":
        return name, RecipeSettings(folds=recipe.get("folds", INNER_FOLDS), calibration=recipe.get("calibration", "isotonic"),
                                    fallback_z=recipe.get("fallback_z", 1.0))
    if name == "bag":
        return name, RecipeSettings(members=recipe["members"], member_share=recipe["share"], calibration=recipe["calibration"])
    return name, RecipeSettings(edge_share=trained.edge_share)


def base_training_set(run: RunContext, base: RSD) -> TrainingSet:
    """The run's train and validation queries as a training set (what the champion learnt from)."""
    task = run.task
    rows = np.sort(np.concatenate([task.part("train"), task.part("val")]))
    targets = score_targets(base, task) if _learns_scores(run.trained) else task.labels
    labels = task.labels[rows]
    return TrainingSet(run.features.take(rows), take_targets(targets, rows), labels, task.pair.take(rows),
                       fold_strata(task.pair.sources[rows], labels, INNER_FOLDS))


def capture_training_set(
    run: RunContext, capture: RSD, extractor: FeatureExtractor, *, cache_dir: Path | None, progress: Progress | None = None
) -> TrainingSet:
    """The judged captured queries of ``capture`` for the run's pair, labelled with the run's rule and MES."""
    task = run.task
    scale = run.manifest.get("score_scale")
    if scale and [capture.info.score_min, capture.info.score_max] != list(scale):
        raise ValueError(f"{capture.root}: scores lie on [{capture.info.score_min:g}, {capture.info.score_max:g}], the run's "
                         f"data on [{scale[0]:g}, {scale[1]:g}]; judge the capture on the run's scale")
    pair = capture.pair(edge=task.pair.edge, cloud=task.pair.cloud)
    if len(pair) < 10:
        raise ValueError(f"{capture.root}: only {len(pair)} captured queries have judged answers of both "
                         f"{task.pair.edge!r} and {task.pair.cloud!r}; need at least 10")
    labels = competence_labels(pair.score_edge, pair.score_cloud, mes=task.mes, rule=task.rule, k=task.k)
    features = rsd_features(capture, extractor, cache_dir=cache_dir, item_ids=pair.item_ids, progress=progress)
    targets = pair_score_targets(capture, pair, mes=task.mes, rule=task.rule, k=task.k) if _learns_scores(run.trained) else labels
    return TrainingSet(features, targets, labels, pair, fold_strata(pair.sources, labels, INNER_FOLDS))


def build_contest(run: RunContext, base: TrainingSet, capture: TrainingSet) -> Contest:
    """The contest between the run's router and a challenger of its kind and recipe."""
    recipe, settings = recipe_settings(run.trained)
    return Contest(run.trained, router_factory(run.trained), recipe, base, capture, settings)


def train_challenger(contest: Contest, scenarios: Sequence[Scenario], *, seed: int = 0, progress: Progress | None = None) -> TrainedRouter:
    """The challenger to serve: trained on the base data and every captured query."""
    data = concat_training_sets(contest.base, contest.capture)
    return train_with_recipe(contest.recipe, contest.make_router, data, scenarios, seed=seed, settings=contest.settings,
                             progress=progress)


def _learns_scores(trained: TrainedRouter) -> bool:
    router = trained.router
    if isinstance(router, EnsembleRouter):
        router = router.members[0]
    return bool(router.learns_scores)

