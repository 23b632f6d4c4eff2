"""Score and latency distributions of a Response Score Dataset (paper, Appendix A.4, Figures 3–7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.data.rsd import RSD
from ecvl_router.data.summary import LATENCY_PERCENTILES, summarize

HEATMAP_PANELS = ("mean_score", "median_latency", "score_per_second", "score_std")
"""The four panels of Figure 7: mean score, median latency [s], score per second, score standard deviation."""


@dataclass(frozen=True)
class DatasetAnalysis:
    """Everything Figures 3–7 show.

    ``responses`` has one row per response with its item's source; ``by_source`` and ``by_model`` hold the
    count, mean score, its standard error and the mean and median latency, sources sorted by mean score
    (easiest first) and models in the dataset's order; ``heatmaps[panel]`` is a model × source table for
    each of ``HEATMAP_PANELS`` (score per second = mean score / median latency of the cell).
    """

    summary: dict[str, Any]
    responses: pd.DataFrame
    by_source: pd.DataFrame
    by_model: pd.DataFrame
    heatmaps: dict[str, pd.DataFrame]
    latency_percentiles: dict[int, float]

    @property
    def score_min(self) -> float:
        return float(self.summary["score_scale"][0])

    @property
    def score_max(self) -> float:
        return float(self.summary["score_scale"][1])


def _grouped(responses: pd.DataFrame, key: str) -> pd.DataFrame:
    grouped = responses.groupby(key, sort=False)
    table = pd.DataFrame(
        {
            "n": grouped.size(),
            "score_mean": grouped["score"].mean(),
            "score_se": grouped["score"].std(ddof=1) / np.sqrt(grouped.size()),
            "latency_mean": grouped["latency_s"].mean(),
            "latency_median": grouped["latency_s"].median(),
        }
    )
    return table.sort_values("score_mean", ascending=False)


def analyse_dataset(rsd: RSD) -> DatasetAnalysis:
    """The statistics of Figures 3–7 for ``rsd`` (any score scale)."""
    responses = rsd.responses.merge(rsd.items[["item_id", "source"]], on="item_id", how="left")
    responses = responses[["item_id", "model", "source", "score", "latency_s"]].copy()
    if responses.empty:
        raise ValueError(f"dataset {rsd.info.name!r} has no responses to analyse")
    cells = responses.groupby(["model", "source"], sort=False)
    models, sources = rsd.models, [s for s in rsd.sources if s in set(responses["source"])]
    mean_score = cells["score"].mean().unstack().reindex(index=models, columns=sources)
    median_latency = cells["latency_s"].median().unstack().reindex(index=models, columns=sources)
    heatmaps = {
        "mean_score": mean_score,
        "median_latency": median_latency,
        "score_per_second": mean_score / median_latency.where(median_latency > 0),
        "score_std": cells["score"].std(ddof=1).unstack().reindex(index=models, columns=sources),
    }
    latency = responses["latency_s"].to_numpy(dtype=np.float64)
    return DatasetAnalysis(
        summary=summarize(rsd),
        responses=responses,
        by_source=_grouped(responses, "source"),
        by_model=_grouped(responses, "model").reindex(models),
        heatmaps=heatmaps,
        latency_percentiles={q: float(np.percentile(latency, q)) for q in LATENCY_PERCENTILES},
    )
