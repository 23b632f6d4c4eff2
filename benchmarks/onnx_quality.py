"""Routing quality with the ONNX encoders: a trained run's test-split metrics from torch and from ONNX features.

Reopens a run written by `ecvl-router train` (its split and data), featurises its queries once with the
run's torch encoders and once with their ONNX export (`ecvl-router export-encoders`), and prints per
scenario the router's RCS, APSP, CA and AIL on the test split from each, their difference, and the share
of identical decisions (the demo's Table 1 row of this router and pair, torch against ONNX).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/onnx_quality.py --run runs/demo --onnx onnx-encoders/
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ecvl_router.learning.evaluation import evaluate_decisions
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.learning.runs import open_run

KEYS = ("rcs", "apsp", "ca", "ail")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder written by `ecvl-router train`")
    parser.add_argument("--onnx", type=Path, required=True, help="folder written by `ecvl-router export-encoders`")
    parser.add_argument("--split", default="test", help="split part to evaluate on")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    runs = {
        "torch": open_run(args.run),
        "onnx": open_run(args.run, extractor=FeatureExtractor.from_settings(ExtractorSettings(onnx=args.onnx))),
    }
    task = runs["torch"].task
    view, labels = task.view(args.split)
    rows = task.part(args.split)
    print(f"{args.run}: {args.split} split, {len(view)} queries, router {runs['onnx'].trained.label}")
    print(f"{'scenario':>12} | {'RCS torch':>9} {'RCS onnx':>9} {'diff':>8} | " + " ".join(f"{key + ' diff':>9}" for key in KEYS[1:]) + f" | {'identical':>9}")
    for name in runs["torch"].trained.scenario_names:
        scenario = runs["torch"].trained.choice(name).scenario
        decisions = {label: run.trained.decide(run.features.take(rows), name)[0] for label, run in runs.items()}
        metrics = {label: evaluate_decisions(decisions[label], view, labels, scenario) for label in runs}
        diff = {key: float(metrics["onnx"][key]) - float(metrics["torch"][key]) for key in KEYS}
        same = float((decisions["torch"] == decisions["onnx"]).mean())
        print(f"{name:>12} | {float(metrics['torch']['rcs']):>9.4f} {float(metrics['onnx']['rcs']):>9.4f} {diff['rcs']:>+8.4f} | "
              + " ".join(f"{diff[key]:>+9.4f}" for key in KEYS[1:]) + f" | {100 * same:>8.2f}%")


if __name__ == "__main__":
    main()
