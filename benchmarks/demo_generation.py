"""Generate the demo benchmark (5,000 items by default) into a temporary folder; print the wall time and the
calibration figures next to the paper's (Table 1, Appendix A.4).

    .venv/bin/python benchmarks/demo_generation.py [--items 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecvl_router.data.demo import DEMO_MODELS, generate_demo

# Paper figures: solve rates at MES 6 are Table 1's All-at-Large/All-at-Small APSP; latencies are A.4.2.
PAPER_SOLVE_RATE = {1: 0.456, 8: 0.529, 38: 0.549}
PAPER_MEDIAN_LATENCY_S = {0.25: 0.62, 1: 0.71, 2: 0.81, 38: 2.47}
PAPER_SCORE = {"mean": 5.58, "median": 6.0}
PAPER_LATENCY = {"median": 0.60, "mean": 1.31, "P75": 1.17, "P90": 2.52, "P99": 5.45}


def _row(name: str, measured: float, paper: float | None, fmt: str = "{:.3f}") -> str:
    return f"  {name:<34} {fmt.format(measured):>9}   {'' if paper is None else fmt.format(paper):>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        cpu_started = time.process_time()
        summary = generate_demo(Path(tmp) / "demo", n_items=args.items, seed=args.seed)
        cpu_seconds = time.process_time() - cpu_started
        responses = pd.read_json(Path(tmp) / "demo" / "responses.jsonl", lines=True)
        items = pd.read_json(Path(tmp) / "demo" / "items.jsonl", lines=True)
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "demo").rglob("*") if p.is_file()) / 1e6

    latency = responses["latency_s"].to_numpy()
    print(f"demo benchmark: {summary.n_items} items, {summary.n_responses} responses, {len(summary.models)} models, seed {args.seed}")
    print(f"  wall time {summary.seconds:.1f} s, CPU time of this process {cpu_seconds:.1f} s, "
          f"{1000 * summary.seconds / summary.n_items:.1f} ms per item, {size_mb:.0f} MB on disk")
    print(f"  text-only items: {items['image'].isna().mean():.1%}; items per source: {summary.sources}")
    print()
    print(f"  {'figure':<34} {'measured':>9}   {'paper':>9}")
    print(_row("score mean", summary.mean_score, PAPER_SCORE["mean"], "{:.2f}"))
    print(_row("score median", summary.median_score, PAPER_SCORE["median"], "{:.1f}"))
    for model in DEMO_MODELS:
        print(_row(f"solve rate (score >= 6) {model.size_label}", summary.solve_rate[model.name], PAPER_SOLVE_RATE.get(model.params_b)))
    for model in DEMO_MODELS:
        print(_row(f"median latency [s] {model.size_label}", summary.median_latency_s[model.name],
                   PAPER_MEDIAN_LATENCY_S.get(model.params_b)))
    measured = {"median": np.median(latency), "mean": latency.mean(), "P75": np.percentile(latency, 75),
                "P90": np.percentile(latency, 90), "P99": summary.latency_p99_s}
    for name, value in measured.items():
        print(_row(f"latency {name} [s], all responses", value, PAPER_LATENCY[name], "{:.2f}"))
    print()
    print("  mean score per source:", responses.merge(items[["item_id", "source"]], on="item_id")
          .groupby("source")["score"].mean().round(2).sort_values(ascending=False).to_dict())


if __name__ == "__main__":
    main()
