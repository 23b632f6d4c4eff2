"""Training speed of a router through the shared training loop (target: ecvl, 50 epochs <= 60 s on 2 cores).

Default (synthetic) mode: features of the demo's shapes — --n-train 1800 and --n-val 600 queries (the
6:2:2 split of 3,000 items), 384-d text, 1280-d image (3 % of queries without one), 12 raw statistics —
and labels from a noisy hidden rule; the three preset scenarios share one run, as in `ecvl-router train`.
Real mode (--data DIR --edge A --cloud B): a dataset's pair with its stratified split and the default
feature extractor's (cached) features.

Prints the wall time of the whole run and the process CPU time (on a machine shared with other
work, CPU time / threads estimates the wall time on dedicated cores), the optimiser steps per second,
and the cost of one epoch's validation (one forward pass plus the tau search of every scenario).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --threads 1
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ecvl_router.data.rsd import PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import competence_labels
from ecvl_router.routers import create_router
from ecvl_router.routers.threads import limited_threads
from ecvl_router.scenarios import SCENARIOS
from ecvl_router.learning.training import search_threshold, train_router


def synthetic_split(n: int, seed: int) -> tuple[QueryFeatures, np.ndarray, PairView]:
    """Features of the demo's shapes with labels from a noisy hidden linear rule (MES rule at MES 6)."""
    rng = np.random.default_rng(seed)
    hidden = np.random.default_rng(0).normal(size=384 + 1280) / 40
    text = rng.normal(size=(n, 384)).astype(np.float32)
    has_image = rng.random(n) >= 0.03
    image = (np.abs(rng.normal(size=(n, 1280))) * has_image[:, None]).astype(np.float32)
    stats = np.column_stack([rng.poisson(25, n), rng.integers(64, 2048, (n, 2)), rng.random((n, 9))]).astype(np.float32)
    signal = np.concatenate([text, image - image.mean()], axis=1) @ hidden + rng.normal(scale=0.5, size=n)
    score_edge = np.clip(np.round(6 + 2 * signal), 1, 10)
    score_cloud = np.clip(np.round(rng.normal(7.5, 1.5, n)), 1, 10)
    ids = np.array([f"{seed}-{i}" for i in range(n)], dtype=object)
    pair = PairView(
        edge="edge", cloud="cloud", item_ids=ids, sources=np.full(n, "synthetic", dtype=object),
        score_edge=score_edge, score_cloud=score_cloud,
        latency_edge=rng.gamma(2, 0.5, n), latency_cloud=rng.gamma(2, 3.5, n),
        tokens_edge=rng.integers(10, 300, n).astype(float), tokens_cloud=rng.integers(10, 600, n).astype(float),
        missing_edge=0, missing_cloud=0,
    )
    features = QueryFeatures(item_ids=ids, text=text, image=image, stats=stats, has_image=has_image)
    return features, competence_labels(score_edge, score_cloud, mes=6.0), pair


def real_split(data: Path, edge: str, cloud: str, cache: Path | None, seed: int):
    """Train and validation parts of a dataset's pair, with the default extractor's features."""
    from ecvl_router.data import load_rsd
    from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
    from ecvl_router.learning.routing_task import build_task
    from ecvl_router.learning.runs import default_cache_dir, rsd_features

    rsd = load_rsd(data)
    task = build_task(rsd, edge, cloud, mes=6.0, rule="mes", k=1, seed=seed)
    extractor = FeatureExtractor.from_settings(ExtractorSettings())
    features = rsd_features(rsd, extractor, cache_dir=cache or default_cache_dir(), item_ids=task.pair.item_ids)
    train, val = task.part("train"), task.part("val")
    return features.take(train), task.labels[train], features.take(val), task.pair.take(val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--router", default="ecvl")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="the router's num_threads")
    parser.add_argument("--n-train", type=int, default=1800)
    parser.add_argument("--n-val", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="a dataset folder (real mode)")
    parser.add_argument("--edge", help="edge model (real mode)")
    parser.add_argument("--cloud", help="cloud model (real mode)")
    parser.add_argument("--cache", type=Path, help="embedding cache (real mode)")
    args = parser.parse_args()

    if args.data:
        X, y, X_val, pair_val = real_split(args.data, args.edge, args.cloud, args.cache, args.seed)
        source = f"{args.data} ({args.edge} / {args.cloud})"
    else:
        X, y, _ = synthetic_split(args.n_train, seed=1)
        X_val, _, pair_val = synthetic_split(args.n_val, seed=2)
        source = "synthetic features of the demo's shapes"
    scenarios = list(SCENARIOS.values())
    params = {"num_threads": args.threads, "random_state": args.seed}
    if args.router in ("ecvl", "mlp", "mf"):
        params["epochs"] = args.epochs
    router = create_router(args.router, **params)
    print(f"{args.router}: {source}; {len(X)} train / {len(X_val)} val queries, text {X.text.shape[1]}-d, "
          f"image {X.image.shape[1]}-d, {X.stats.shape[1]} statistics, {len(scenarios)} scenarios, "
          f"{args.threads} thread(s)")

    started, cpu_started = time.perf_counter(), time.process_time()
    trained = train_router(router, X, y, X_val, pair_val, scenarios)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    repeats = 10
    with limited_threads(args.threads):
        validation_started = time.perf_counter()
        for _ in range(repeats):
            p_val = trained.router.predict_proba(X_val)
            for scenario in scenarios:
                search_threshold(p_val, pair_val, scenario)
        validation_ms = (time.perf_counter() - validation_started) / repeats * 1000

    print(f"training + per-epoch validation: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU for {router.n_epochs} epoch(s)")
    if args.router in ("ecvl", "mlp", "mf"):
        steps = router.n_epochs * math.ceil(len(X) / router.batch_size)
        print(f"  {steps} optimiser steps of batch {router.batch_size}: {steps / seconds:.1f} steps/s overall")
    print(f"  one epoch's validation (forward pass + tau search x {len(scenarios)}): {validation_ms:.1f} ms")
    for name, choice in trained.choices.items():
        print(f"  {name}: tau* {choice.tau:.2f}, validation RCS* {choice.rcs:.4f} at epoch {choice.epoch + 1}")


if __name__ == "__main__":
    main()
