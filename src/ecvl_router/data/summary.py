"""Dataset statistics of the paper's Appendix A.4: counts, score and latency distributions, breakdowns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ecvl_router.data.rsd import RSD

LATENCY_PERCENTILES = (50, 75, 90, 99)


def summarize(rsd: RSD) -> dict[str, Any]:
    """Counts per source, group and model, score mean/median, latency mean and percentiles, per-model and per-source means.

    ``items_without_group`` counts the items of a grouped dataset that name no group (0 without groups).
    """
    responses = rsd.responses.merge(rsd.items[["item_id", "source"]], on="item_id", how="left")
    latency = responses["latency_s"].to_numpy(dtype=np.float64)
    percentiles = np.percentile(latency, LATENCY_PERCENTILES) if len(latency) else [np.nan] * len(LATENCY_PERCENTILES)
    return {
        "name": rsd.info.name,
        "score_scale": [rsd.info.score_min, rsd.info.score_max],
        "items": len(rsd.items),
        "responses": len(responses),
        "text_only_items": int(rsd.items["image"].isna().sum()),
        "items_per_source": rsd.items["source"].value_counts(sort=False).to_dict(),
        "groups": rsd.n_groups,
        "items_per_group": rsd.items["group"].value_counts(sort=False).to_dict(),
        "items_without_group": int(rsd.items["group"].isna().sum()) if rsd.has_groups else 0,
        "responses_per_model": responses["model"].value_counts(sort=False).to_dict(),
        "score_mean": float(responses["score"].mean()),
        "score_median": float(responses["score"].median()),
        "latency_mean": float(latency.mean()) if len(latency) else float("nan"),
        **{f"latency_p{q}": float(v) for q, v in zip(LATENCY_PERCENTILES, percentiles)},
        "per_model": _breakdown(responses, "model"),
        "per_source": _breakdown(responses, "source"),
    }


def _breakdown(responses: pd.DataFrame, key: str) -> dict[str, dict[str, float]]:
    grouped = responses.groupby(key, sort=False)
    table = pd.DataFrame(
        {
            "responses": grouped.size(),
            "score_mean": grouped["score"].mean(),
            "score_median": grouped["score"].median(),
            "latency_mean": grouped["latency_s"].mean(),
            "latency_median": grouped["latency_s"].median(),
        }
    )
    return {str(name): {k: float(v) for k, v in row.items()} for name, row in table.iterrows()}
