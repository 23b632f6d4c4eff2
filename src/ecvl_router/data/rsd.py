"""The in-memory Response Score Dataset and its (edge, cloud) pair view."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset's metadata (``dataset.json``)."""

    name: str
    score_min: float
    score_max: float
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score_min": self.score_min, "score_max": self.score_max, "description": self.description}


@dataclass(frozen=True)
class PairView:
    """Aligned arrays for one (edge, cloud) model pair over the items both models answered.

    Token arrays hold NaN where a count is unknown. ``missing_edge`` and ``missing_cloud`` count the items
    left out because that model has no response for them. ``groups`` is None for a dataset without groups;
    otherwise each item's group (``RSD.group_keys``), which every split keeps on one side.
    """

    edge: str
    cloud: str
    item_ids: np.ndarray
    sources: np.ndarray
    score_edge: np.ndarray
    score_cloud: np.ndarray
    latency_edge: np.ndarray
    latency_cloud: np.ndarray
    tokens_edge: np.ndarray
    tokens_cloud: np.ndarray
    missing_edge: int
    missing_cloud: int
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_excluded(self) -> int:
        """Items of the dataset left out because either model lacks a response."""
        return self.missing_edge + self.missing_cloud

    @property
    def grouped(self) -> bool:
        """Whether the queries carry groups."""
        return self.groups is not None

    @property
    def n_groups(self) -> int:
        """Number of distinct groups among the queries (0 without groups)."""
        return 0 if self.groups is None else len(set(self.groups))

    def take(self, index: np.ndarray) -> PairView:
        """The view restricted to rows ``index`` (exclusion counts are kept)."""
        arrays = {
            name: getattr(self, name)[index]
            for name in ("item_ids", "sources", "score_edge", "score_cloud", "latency_edge", "latency_cloud", "tokens_edge", "tokens_cloud")
        }
        return PairView(edge=self.edge, cloud=self.cloud, missing_edge=self.missing_edge, missing_cloud=self.missing_cloud,
                        groups=None if self.groups is None else self.groups[index], **arrays)


@dataclass
class RSD:
    """A Response Score Dataset: items, per-model responses with scores and latencies, and metadata."""

    root: Path
    info: DatasetInfo
    items: pd.DataFrame
    responses: pd.DataFrame
    storage: str  # "interchange" or "parquet"
    manifest: dict[str, Any] | None = field(default=None)

    @property
    def models(self) -> list[str]:
        """Model names in order of first appearance."""
        return list(dict.fromkeys(self.responses["model"]))

    @property
    def sources(self) -> list[str]:
        """Source names in order of first appearance."""
        return list(dict.fromkeys(self.items["source"]))

    @property
    def has_groups(self) -> bool:
        """Whether some item names a group (``items.group``)."""
        return bool(self.items["group"].notna().any())

    @property
    def n_groups(self) -> int:
        """Number of distinct groups the items name."""
        return int(self.items["group"].nunique())

    def group_keys(self) -> np.ndarray | None:
        """Each item's group in item order, None for a dataset without groups.

        An item without a group forms a group of its own, keyed by its ``item_id``.
        """
        if not self.has_groups:
            return None
        groups = self.items["group"]
        return groups.where(groups.notna(), self.items["item_id"]).to_numpy(dtype=object)

    def image_path(self, relative: str | None) -> Path | None:
        """The absolute path of an item's image (``items.image``), or None for a text-only item."""
        if relative is None or (isinstance(relative, float) and np.isnan(relative)):
            return None
        return self.root.joinpath(*PurePosixPath(relative).parts)

    def pair(self, edge: str, cloud: str) -> PairView:
        """The aligned (edge, cloud) view over items both models answered, in item order."""
        for model in (edge, cloud):
            if model not in set(self.responses["model"]):
                raise KeyError(f"model {model!r} not in dataset {self.info.name!r}; models: {', '.join(self.models)}")
        if edge == cloud:
            raise ValueError(f"edge and cloud must be different models, got {edge!r} twice")
        columns = ["item_id", "score", "latency_s", "output_tokens"]
        edge_rows, cloud_rows = (self.responses.loc[self.responses["model"] == m, columns] for m in (edge, cloud))
        frame = self.items[["item_id", "source"]].assign(group_key=self.group_keys()).merge(edge_rows, on="item_id", how="left")
        frame = frame.merge(cloud_rows, on="item_id", how="left", suffixes=("_edge", "_cloud"))
        has_edge = frame["score_edge"].notna().to_numpy()
        has_cloud = frame["score_cloud"].notna().to_numpy()
        kept = frame[has_edge & has_cloud]

        def column(name: str) -> np.ndarray:
            return kept[name].to_numpy(dtype=np.float64, na_value=np.nan)

        return PairView(
            edge=edge,
            cloud=cloud,
            item_ids=kept["item_id"].to_numpy(dtype=object),
            sources=kept["source"].to_numpy(dtype=object),
            score_edge=column("score_edge"),
            score_cloud=column("score_cloud"),
            latency_edge=column("latency_s_edge"),
            latency_cloud=column("latency_s_cloud"),
            tokens_edge=column("output_tokens_edge"),
            tokens_cloud=column("output_tokens_cloud"),
            missing_edge=int((~has_edge).sum()),
            missing_cloud=int((has_edge & ~has_cloud).sum()),
            groups=kept["group_key"].to_numpy(dtype=object) if self.has_groups else None,
        )
