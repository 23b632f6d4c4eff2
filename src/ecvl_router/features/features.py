"""The feature matrices every router consumes: text and image embeddings plus query statistics."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONTEXT = ("questions", "sources", "groups")
"""The optional per-query context of QueryFeatures, beside the matrices."""


@dataclass(frozen=True)
class QueryFeatures:
    """Aligned per-query features; row ``i`` of every array describes ``item_ids[i]``.

    ``image`` holds zeros where a query has no image; ``has_image`` says which rows have one.
    ``stats`` are raw (unscaled) statistics; routers standardise them on their training split.
    The optional context (None when unknown): ``questions``, the question texts (set by the extractor);
    ``sources``, the items' sources; ``groups``, the items' groups, which routers with an inner
    cross-validation keep on one side of every inner split.
    """

    item_ids: np.ndarray  # (n,) str
    text: np.ndarray  # (n, d_text) float32
    image: np.ndarray  # (n, d_image) float32
    stats: np.ndarray  # (n, d_stats) float32
    has_image: np.ndarray  # (n,) bool
    questions: np.ndarray | None = None  # (n,) str
    sources: np.ndarray | None = None  # (n,) str
    groups: np.ndarray | None = None  # (n,) str

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("text", "image", "stats", "has_image", *CONTEXT):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"QueryFeatures.{name} has {len(value)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.item_ids)

    def take(self, index: np.ndarray) -> QueryFeatures:
        """Rows selected by an integer or boolean index, in that order."""
        return QueryFeatures(**{
            field.name: None if getattr(self, field.name) is None else getattr(self, field.name)[index]
            for field in dataclasses.fields(self)
        })

    def select(self, item_ids: np.ndarray) -> QueryFeatures:
        """Rows for the given item ids, in that order; raises KeyError naming a missing id."""
        position = {item_id: i for i, item_id in enumerate(self.item_ids)}
        missing = [item_id for item_id in item_ids if item_id not in position]
        if missing:
            raise KeyError(f"no features for item {missing[0]!r} ({len(missing)} missing)")
        return self.take(np.array([position[item_id] for item_id in item_ids], dtype=np.int64))

    def with_sources(self, sources: Sequence[str | None]) -> QueryFeatures:
        """These features with each query's source (None where unknown); unchanged when no source is known."""
        return self if all(source is None for source in sources) else self.with_context(sources=np.asarray(list(sources), dtype=object))

    def with_context(self, *, sources: np.ndarray | None = None, groups: np.ndarray | None = None) -> QueryFeatures:
        """These features with the items' ``sources`` and ``groups`` (each kept as it is where None is given)."""
        return dataclasses.replace(
            self,
            sources=self.sources if sources is None else np.asarray(sources, dtype=object),
            groups=self.groups if groups is None else np.asarray(groups, dtype=object),
        )
