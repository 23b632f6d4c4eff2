"""Cross-validated ensembles of one router: the oof recipe with and without its fallback, and seed bagging.

    .venv/bin/python benchmarks/ensemble_cv.py --data DIR --edge E --cloud C [--mes M]
        --routers ecvl:oof,ecvl:bag [--members 5] [--folds 5] [--repeats 3] [--jobs 2] --out REPORT_DIR

The same folds, trivial policies and oracle as ``ecvl-router evaluate-routers`` (seed 0), and the same
report (``report.md``, ``summary.csv``, ``folds.csv``, ``rcs.png``), but each fit gives two rows:

- ``NAME:oof`` is trained once with the fallback at 1 SE; the row ``NAME:oof-nofb`` routes with the
  same ensemble and the τ the search chose before the fallback replaced it (kept in the choice's RCS
  curve), i.e. exactly what ``--fallback-z -1`` gives, without a second fit.
- ``NAME:bag`` (``ecvl_router.learning.bagging``) trains ``--members`` routers with the paper's split recipe on
  different seeds and validation parts; its first member is the paper's ``NAME`` router of
  ``evaluate-routers`` (same seed, same validation part), recorded as the row ``NAME``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from cv_setup import cv_parser, embedded_dataset
from ecvl_router.learning.bagging import train_bagged
from ecvl_router.learning.crossval import Fold, fold_strata, repeated_stratified_folds
from ecvl_router.learning.evaluation import reference_decisions
from ecvl_router.report.crossval_report import write_crossval_report
from ecvl_router.learning.router_cv import TRIVIAL, CVInputs, CVSettings, PolicySpec, fold_row, summarise, train_policy
from ecvl_router.routers import create_router, router_class
from ecvl_router.learning.routing_task import build_task, score_targets
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import ScenarioChoice

_RCS_TIE = 1e-12


def searched_tau(choice: ScenarioChoice) -> float:
    """The τ the search chose before any fallback replaced it (the fallback keeps the search's RCS curve)."""
    if choice.fallback is None:
        return choice.tau
    curve = choice.threshold.rcs_by_tau
    tied = np.flatnonzero(curve >= curve.max() - _RCS_TIE)
    return float(choice.threshold.grid[tied].min())


def fold_rows(inputs: CVInputs, specs: Sequence[str], scenarios: Sequence[Scenario], fold: Fold, settings: CVSettings,
              members: int) -> list[dict[str, Any]]:
    """The rows of one fold: trivial policies, the oracle, then every spec's rows (see the module docstring)."""
    test_pair, test_labels = inputs.pair.take(fold.test), inputs.labels[fold.test]
    rows: list[dict[str, Any]] = []

    def record(policy: str, scenario: Scenario, to_edge: np.ndarray, tau: float = float("nan"), fallback: str | None = None,
               seconds: float = float("nan")) -> None:
        rows.append({**fold_row(fold, policy, scenario, to_edge, test_pair, test_labels, tau, fallback), "seconds": seconds})

    for scenario in scenarios:
        for name in (*TRIVIAL, "oracle"):
            record(name, scenario, reference_decisions(name, test_labels))
    X_test = inputs.features.take(fold.test)
    for text in specs:
        router, _, recipe = text.partition(":")
        started = time.perf_counter()
        if recipe == "oof":
            trained = train_policy(PolicySpec(router, "oof"), inputs, fold.train, scenarios, settings)
            seconds = time.perf_counter() - started
            p = trained.router.predict_proba(X_test)
            for scenario in scenarios:
                choice = trained.choice(scenario.name)
                record(f"{router}:oof", scenario, p >= choice.tau, choice.tau, choice.fallback, seconds)
                tau = searched_tau(choice)
                record(f"{router}:oof-nofb", scenario, p >= tau, tau, None, seconds)
        elif recipe == "bag":
            part = fold.train
            data = inputs.training_set(router_class(router).learns_scores).take(part)
            bag = train_bagged(lambda seed: create_router(router, random_state=seed), data, scenarios,
                               members=members, seed=settings.seed, calibration=settings.calibration)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            for scenario in scenarios:
                to_edge, _, tau = bag.trained.decide(X_test, scenario.name)
                record(f"{router}:bag", scenario, to_edge, tau, None, seconds)
                to_edge, _, tau = bag.members[0].decide(X_test, scenario.name)
                record(router, scenario, to_edge, tau, None, seconds / members)
        else:
            raise ValueError(f"unknown spec {text!r}: use NAME:oof or NAME:bag")
    return rows


def main() -> None:
    parser = cv_parser(__doc__, "ecvl:oof")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--first-repeat", type=int, default=0, help="skip the repetitions before this one (to finish a run in parts)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rsd, features, scenarios = embedded_dataset(args)
    specs = args.routers.split(",")
    settings = CVSettings()
    task = build_task(rsd, args.edge, args.cloud, mes=scenarios[0].mes, rule="mes", k=1, seed=settings.seed)
    strata = fold_strata(task.pair.sources, task.labels, args.folds)
    learns_scores = any(router_class(text.partition(":")[0]).learns_scores for text in specs)
    inputs = CVInputs(pair=task.pair, labels=task.labels, features=features.select(task.pair.item_ids), strata=strata,
                      targets=score_targets(rsd, task) if learns_scores else None)
    folds = repeated_stratified_folds(strata, n_folds=args.folds, n_repeats=args.repeats, seed=settings.seed)
    folds = [fold for fold in folds if fold.repeat >= args.first_repeat]
    started = time.perf_counter()
    tasks = (delayed(fold_rows)(inputs, specs, scenarios, fold, settings, args.members) for fold in folds)
    rows: list[dict[str, Any]] = []
    for done, result in enumerate(Parallel(n_jobs=args.jobs, return_as="generator")(tasks), start=1):
        rows += result
        print(f"{done}/{len(folds)} folds, {time.perf_counter() - started:.0f} s", flush=True)
    wall = time.perf_counter() - started
    frame = pd.DataFrame(rows)
    summary = summarise(frame, test_share=1 / (args.folds - 1))
    described = {"queries": len(task.pair), "folds": f"{args.folds} × {args.repeats} repeats", "MES": scenarios[0].mes,
                 "routers": args.routers, "bag members": args.members, "seed": settings.seed,
                 "wall time": f"{wall:.0f} s with {args.jobs} worker process(es)"}
    report = write_crossval_report(frame, summary, args.out, title=f"{rsd.info.name}: {args.edge} (edge) / {args.cloud} (cloud)",
                                   settings=described)
    print(f"report {report}; wall time {wall:.0f} s ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
