"""Routing latency per component against the VLMs' latencies (paper, section 5.4, Table 2).

Every component is timed at batch 1 on real dataset queries, interleaved query by query so that load
from other processes affects all components alike: the text encoder, the image encoder (decoded image),
the query statistics, the fusion (the trained router's forward pass from features to P(edge competent)),
and the whole routing decision as the gateway makes it (``FeatureExtractor.extract_one`` on the image
file, which overlaps the two encoders, then the router).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecvl_router.data.rsd import RSD
from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.features.imaging import open_image
from ecvl_router.features.statistics import query_statistics
from ecvl_router.learning.training import TrainedRouter

COMPONENTS = ("text encoder", "image encoder", "statistics", "fusion (router network)", "routing decision, end to end")
WARMUP_QUERIES = 3


@dataclass(frozen=True)
class RoutingLatency:
    """Seconds per call of every component (one value per timed query) and the models' mean latencies."""

    seconds: dict[str, np.ndarray]
    model_latency: dict[str, float]
    queries: int

    def component_table(self) -> pd.DataFrame:
        """Median and P95 per component, in milliseconds."""
        return pd.DataFrame(
            [{"component": name, "median_ms": 1000 * float(np.median(values)), "p95_ms": 1000 * float(np.percentile(values, 95))}
             for name, values in self.seconds.items()]
        )

    def model_table(self) -> pd.DataFrame:
        """Each model's mean latency in the dataset and the median end-to-end routing latency as a share of it."""
        routing = float(np.median(self.seconds[COMPONENTS[-1]]))
        return pd.DataFrame(
            [{"model": model, "mean_latency_s": latency, "routing_share": routing / latency if latency > 0 else float("nan")}
             for model, latency in self.model_latency.items()]
        )


def latency_queries(rsd: RSD, count: int, *, seed: int = 0) -> list[tuple[str, str, object]]:
    """(item id, question, image path) of ``count`` items with an image, drawn with ``seed`` (repeated if too few)."""
    with_image = rsd.items[rsd.items["image"].notna()]
    if with_image.empty:
        raise ValueError(f"dataset {rsd.info.name!r} has no item with an image to time the image encoder on")
    rows = with_image.sample(n=min(count, len(with_image)), random_state=seed)
    drawn = [(row.item_id, row.question, rsd.image_path(row.image)) for row in rows.itertuples()]
    return [drawn[i % len(drawn)] for i in range(count)]


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


Query = tuple[str, str, object]
"""(item id, question, image path)."""


def time_components(
    queries: Sequence[Query],
    extractor: FeatureExtractor,
    trained: TrainedRouter,
    scenario_name: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Seconds per call of every component on each query; the first ``WARMUP_QUERIES`` are run untimed."""
    timed = len(queries) - WARMUP_QUERIES
    if timed < 1:
        raise ValueError(f"need more than {WARMUP_QUERIES} queries (the first ones warm up), got {len(queries)}")
    seconds: dict[str, list[float]] = {name: [] for name in COMPONENTS}
    for index, (item_id, question, path) in enumerate(queries):
        image = open_image(path, name=f"item {item_id!r}")
        features = extractor.extract_one(question, path, item_id=str(item_id))
        cases = {
            COMPONENTS[0]: lambda: extractor.text_encoder.encode([question]),
            COMPONENTS[1]: lambda: extractor.image_encoder.encode([image]),
            COMPONENTS[2]: lambda: query_statistics(question, image),
            COMPONENTS[3]: lambda: trained.predict_proba(features, scenario_name),
            COMPONENTS[4]: lambda: trained.decide(extractor.extract_one(question, path, item_id=str(item_id)), scenario_name),
        }
        timings = {name: _timed(case) for name, case in cases.items()}
        if index >= WARMUP_QUERIES:
            for name, value in timings.items():
                seconds[name].append(value)
            if progress is not None:
                progress(index + 1 - WARMUP_QUERIES, timed)
    return {name: np.asarray(values) for name, values in seconds.items()}


def measure_routing_latency(
    rsd: RSD,
    extractor: FeatureExtractor,
    trained: TrainedRouter,
    scenario_name: str,
    models: Sequence[str],
    *,
    queries: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RoutingLatency:
    """Time every component on ``queries`` (at least 1) dataset queries, after ``WARMUP_QUERIES`` untimed ones.

    ``trained`` must have been trained on features of ``extractor``; ``models``' mean latencies come
    from the dataset's responses.
    """
    if queries < 1:
        raise ValueError(f"queries must be at least 1, got {queries}")
    sample = latency_queries(rsd, queries + WARMUP_QUERIES, seed=seed)
    seconds = time_components(sample, extractor, trained, scenario_name, progress=progress)
    responses = rsd.responses
    model_latency = {model: float(responses.loc[responses["model"] == model, "latency_s"].mean()) for model in models}
    return RoutingLatency(seconds, model_latency, queries)
