"""Routing latency per component at batch 1 (the paper's Table 2 analogue) with the default encoders.

One routing decision for a 448 px image and a 30-word question: text encoder, image encoder,
statistics, fusion (the ECVL router's network) and the whole decision as the gateway makes it
(``FeatureExtractor.extract_one`` with both encoders overlapped, then the router), each over
--runs repetitions, interleaved so that load from other processes affects all components alike.
Targets on 2 CPU cores: end-to-end median <= 30 ms with the torch encoders, <= 15 ms with their ONNX export.
With ``--onnx DIR`` (a folder written by ``ecvl-router export-encoders``) the ONNX encoders are timed right
after the torch ones, on the same queries.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/route_latency.py [--runs 100] [--encoders encoders.yaml] [--onnx DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ecvl_router import SCENARIOS
from ecvl_router.data.rsd import PairView
from ecvl_router.experiments.router_latency import WARMUP_QUERIES, time_components
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers import create_router
from ecvl_router.learning.training import TrainedRouter, train_router

QUESTION = (
    "In the chart on the left, which of the four coloured bars shows the largest value for the year 2019, "
    "and by how many units does it exceed the smallest bar in that group?"
)


def test_image(path: Path, side: int, seed: int) -> Path:
    """A cluttered 448 px scene (random shapes on noise), saved as JPEG like an uploaded photo."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, size=(side, side, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.integers(0, side, size=2)
        r = int(rng.integers(8, 40))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, size=3)))
    image.save(path, quality=90)
    return path


def fusion_router(extractor: FeatureExtractor) -> TrainedRouter:
    """An ECVL router with the extractor's input sizes, fitted for one epoch on random features (weights do not change timing)."""
    rng = np.random.default_rng(0)
    n = 128
    probe = extractor.extract_one("probe question", None)
    features = QueryFeatures(
        item_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        text=rng.normal(size=(n, probe.text.shape[1])).astype(np.float32),
        image=rng.normal(size=(n, probe.image.shape[1])).astype(np.float32),
        stats=rng.normal(size=(n, probe.stats.shape[1])).astype(np.float32),
        has_image=np.ones(n, dtype=bool),
    )
    scores = rng.integers(1, 11, size=(2, n)).astype(float)
    pair = PairView("edge", "cloud", features.item_ids, np.array(["s"] * n, dtype=object), scores[0], scores[1],
                    np.full(n, 0.5), np.full(n, 2.0), np.full(n, 10.0), np.full(n, 20.0), 0, 0)
    labels = (scores[0] >= scores[1]).astype(int)
    return train_router(create_router("ecvl", epochs=1), features, labels, features, pair, [SCENARIOS["quality"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--image-px", type=int, default=448)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads of the main thread for the per-component timings (extract_one runs each encoder in its own "
             "1-thread worker; 2 here leaves OpenMP workers spinning on the cores those workers need)",
    )
    parser.add_argument("--encoders", type=Path, help="YAML of ExtractorSettings (default: the defaults)")
    parser.add_argument("--onnx", type=Path, help="folder written by `ecvl-router export-encoders`: time it as well")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    torch.set_num_threads(args.threads)
    settings = ExtractorSettings.from_yaml(args.encoders) if args.encoders else ExtractorSettings()
    runs = [("torch", settings, 30.0)] + ([("onnx", ExtractorSettings(onnx=args.onnx), 15.0)] if args.onnx else [])
    question = " ".join(QUESTION.split()[:30])
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        images = [test_image(Path(folder) / f"q{i}.jpg", args.image_px, i) for i in range(8)]
        queries = [(f"q{i}", question, images[i % len(images)]) for i in range(args.runs + WARMUP_QUERIES)]
        for label, run_settings, target in runs:
            extractor = FeatureExtractor.from_settings(run_settings)
            seconds = time_components(queries, extractor, fusion_router(extractor), "quality")
            extractor.close()
            print(f"\n{label}: routing latency at batch 1: {args.runs} runs, {args.image_px} px image, {len(question.split())}-word "
                  f"question, {args.threads} torch threads; settings: {run_settings.model_dump(mode='json', exclude_defaults=True)}")
            print(f"{'component':32s} {'median ms':>10s} {'p95 ms':>10s}")
            for name, values in seconds.items():
                print(f"{name:32s} {1000 * np.median(values):10.2f} {1000 * np.percentile(values, 95):10.2f}")
            total = 1000 * float(np.median(seconds["routing decision, end to end"]))
            print(f"target: end-to-end median <= {target:g} ms -> {'met' if total <= target else 'NOT met'} ({total:.1f} ms)")


if __name__ == "__main__":
    main()
