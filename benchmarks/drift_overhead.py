"""What the drift metrics cost: one router decision recorded on the request path, and one scrape computing them.

Times (medians and p95 in microseconds) over --runs repetitions, in one process (a registry of its own) and in
prometheus-client's multiprocess mode (a temporary folder; the mode is chosen before the library is imported,
so each mode runs in a process of its own):

- ``observe``: one decision into the histogram of p and its scenario's full window (one decision in, one out);
- ``scrape``: ``/metrics``'s exposition with 3 scenarios of full windows of --window decisions.

    .venv/bin/python benchmarks/drift_overhead.py [--runs 2000] [--window 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCENARIOS = ("quality", "speed", "privacy")


def measure(runs: int, window: int, folder: Path | None) -> dict[str, list[float]]:
    """Times in microseconds of ``observe`` and of a scrape (``folder``: the multiprocess folder, or None)."""
    from ecvl_router.learning.drift import P_BINS
    from ecvl_router.serve.drift import DriftReference
    from ecvl_router.serve.metrics import GatewayMetrics
    from ecvl_router.serve.routing import Decision

    manifest = {"p_reference": {name: {"bins": P_BINS.tolist(), "counts": [5] * (len(P_BINS) - 1)} for name in SCENARIOS}}
    metrics = GatewayMetrics(multiprocess_dir=folder)
    windows = metrics.watch_drift(window)
    windows.serve(DriftReference.from_manifest("bundle", SCENARIOS, manifest))
    rng = np.random.default_rng(0)
    decisions = [Decision("edge" if p > 0.5 else "cloud", float(p), 0.5, SCENARIOS[i % 3], 1.0)
                 for i, p in enumerate(rng.random(3 * window + runs))]
    for decision in decisions[: 3 * window]:  # full windows
        windows.observe("bundle", decision)
    observe = []
    for decision in decisions[3 * window:]:
        started = time.perf_counter()
        windows.observe("bundle", decision)
        observe.append((time.perf_counter() - started) * 1e6)
    scrape = []
    for _ in range(max(runs // 20, 10)):
        started = time.perf_counter()
        metrics.exposition()
        scrape.append((time.perf_counter() - started) * 1e6)
    return {"observe": observe, "scrape": scrape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--mode", choices=("single", "multiprocess"), help=argparse.SUPPRESS)  # one mode, in this process
    args = parser.parse_args()
    if args.mode is not None:
        folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if args.mode == "multiprocess" else None
        print(json.dumps(measure(args.runs, args.window, folder)))
        return
    for mode in ("single", "multiprocess"):
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, **({"PROMETHEUS_MULTIPROC_DIR": folder} if mode == "multiprocess" else {})}
            done = subprocess.run([sys.executable, __file__, "--runs", str(args.runs), "--window", str(args.window), "--mode", mode],
                                  env=env, capture_output=True, text=True, check=True)
        for name, times in json.loads(done.stdout).items():
            print(f"{mode:>12} {name:>8}: median {np.median(times):8.1f} µs, p95 {np.percentile(times, 95):8.1f} µs ({len(times)} runs)")


if __name__ == "__main__":
    main()
