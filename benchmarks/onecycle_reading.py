"""Which reading of the paper's "Adam, initial learning rate 1e-3, OneCycleLR" trains the better ecvl router.

Implemented: 1e-3 is OneCycle's *peak* (``max_lr``; the schedule starts at 1e-3 / 25 = 4e-5, warms up over
30 % of the steps, then anneals). The other reading starts at 1e-3 (``div_factor = 1``) and only anneals.
Trains the ecvl router both ways with the paper's recipe (50 epochs, batch 64, best epoch and τ on the
validation split) on one demo pair and prints the test RCS of each preset per seed.

    .venv/bin/python benchmarks/onecycle_reading.py --data DEMO_DIR [--edge sim-vlm-1b --cloud sim-vlm-38b] [--seeds 2]
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ecvl_router.data import load_rsd
from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.routers import create_router
from ecvl_router.learning.routing_task import build_task
from ecvl_router.learning.runs import default_cache_dir, rsd_features
from ecvl_router.scenarios import SCENARIOS
from ecvl_router.learning.training import train_router

READINGS = {"peak 1e-3 (implemented)": 25.0, "start 1e-3": 1.0}
"""OneCycle's div_factor per reading: initial rate = 1e-3 / div_factor."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--edge", default="sim-vlm-1b")
    parser.add_argument("--cloud", default="sim-vlm-38b")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rsd = load_rsd(args.data)
    extractor = FeatureExtractor.from_settings(ExtractorSettings())
    scenarios = list(SCENARIOS.values())
    results: dict[str, list[list[float]]] = {name: [] for name in READINGS}
    for seed in range(args.seeds):
        task = build_task(rsd, args.edge, args.cloud, mes=scenarios[0].mes, seed=seed)
        X = rsd_features(rsd, extractor, cache_dir=default_cache_dir(), item_ids=task.pair.item_ids)
        train, val, test = (task.part(name) for name in ("train", "val", "test"))
        for name, div_factor in READINGS.items():
            schedule = functools.partial(torch.optim.lr_scheduler.OneCycleLR, div_factor=div_factor)
            with mock.patch("torch.optim.lr_scheduler.OneCycleLR", schedule):
                trained = train_router(create_router("ecvl", random_state=seed), X.take(train), task.labels[train],
                                       X.take(val), task.pair.take(val), scenarios)
            rcs = [float(evaluate_decisions(trained.decide(X.take(test), s.name)[0], task.pair.take(test), None, s)["rcs"])
                   for s in scenarios]
            results[name].append(rcs)
            print(f"seed {seed} {name:<26} test RCS " + "  ".join(f"{s.name} {v:.4f}" for s, v in zip(scenarios, rcs)), flush=True)
    extractor.close()
    for name, rows in results.items():
        means = np.mean(rows, axis=0)
        print(f"mean over {args.seeds} seeds, {name:<26} " + "  ".join(f"{s.name} {v:.4f}" for s, v in zip(scenarios, means)))


if __name__ == "__main__":
    main()
