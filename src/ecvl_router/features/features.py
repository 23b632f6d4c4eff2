"""The feature matrices every router consumes: text and image embeddings plus query statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QueryFeatures:
    """Aligned per-query features; row ``i`` of every array describes ``item_ids[i]``.

    ``image`` holds zeros where a query has no image; ``has_image`` says which rows have one.
    ``stats`` are raw (unscaled) statistics; routers standardise them on their training split.
    """

    item_ids: np.ndarray  # (n,) str
    text: np.ndarray  # (n, d_text) float32
    image: np.ndarray  # (n, d_image) float32
    stats: np.ndarray  # (n, d_stats) float32
    has_image: np.ndarray  # (n,) bool

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("text", "image", "stats", "has_image"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"QueryFeatures.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.item_ids)

    def take(self, index: np.ndarray) -> QueryFeatures:
        """Rows selected by an integer or boolean index, in that order."""
        return QueryFeatures(
            item_ids=self.item_ids[index],
            text=self.text[index],
            image=self.image[index],
            stats=self.stats[index],
            has_image=self.has_image[index],
        )

    def select(self, item_ids: np.ndarray) -> QueryFeatures:
        """Rows for the given item ids, in that order; raises KeyError naming a missing id."""
        position = {item_id: i for i, item_id in enumerate(self.item_ids)}
        missing = [item_id for item_id in item_ids if item_id not in position]
        if missing:
            raise KeyError(f"no features for item {missing[0]!r} ({len(missing)} missing)")
        return self.take(np.array([position[item_id] for item_id in item_ids], dtype=np.int64))
