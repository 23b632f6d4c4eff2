"""A lookup baseline: the mean edge-minus-cloud score of the training queries in the query's cell.

A cell is (``source``, last sentence of the question): on benchmarks whose questions end in an
instruction ("Answer with a floating-point number."), the cell says what the answer looks like, which
alone tells much of how the two models compare. A query of an unseen cell gets its source's mean, and
one of an unseen source the training mean; a query whose source is unknown (a live query) gets the mean
of its last sentence over every source, else the training mean. The ranking score d̄ ∈ [−range, range] (range:
the observed score range) maps monotonically to p = 0.5 + d̄ / (2·range); the recipes' calibration and τ
search take it from there. The cell's competence rate is kept beside it, for reports. It learns no
weights, so a learned router that does not beat it has learnt nothing the question's wording does not say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LabelRule, competence_labels
from ecvl_router.routers.base import Router
from ecvl_router.routers.multi import ScoreTargets, score_levels

STATE_FILE = "lookup.json"
_SENTENCES = re.compile(r"(?<=[.?!:])\s+")


def last_sentence(question: str) -> str:
    """The question's last sentence, whitespace-normalised and lower-cased ('' for an empty question)."""
    sentences = [part for part in _SENTENCES.split(" ".join(str(question).split())) if part]
    return sentences[-1].lower() if sentences else ""


def question_endings(X: QueryFeatures) -> list[str]:
    """Each query's last sentence ('' where the questions are unknown)."""
    return [""] * len(X) if X.questions is None else [last_sentence(question) for question in X.questions]


@dataclass(frozen=True)
class EndingGaps:
    """The mean edge-minus-cloud score per last sentence of the question; ``overall`` for a sentence not seen."""

    means: dict[str, float]
    overall: float

    @classmethod
    def fit(cls, endings: Sequence[str], gap: np.ndarray) -> EndingGaps:
        return cls(_means(np.asarray(endings, dtype=object), gap), float(np.mean(gap)))

    def predict(self, endings: Sequence[str]) -> np.ndarray:
        return np.array([self.means.get(ending, self.overall) for ending in endings], dtype=np.float64)


@dataclass(frozen=True)
class CellKeys:
    """Each query's source (None where unknown), last sentence and cell key (source and last sentence), as arrays."""

    sources: np.ndarray
    endings: np.ndarray
    cells: np.ndarray

    @classmethod
    def of(cls, X: QueryFeatures) -> CellKeys:
        sources = [None] * len(X) if X.sources is None else [None if source is None else str(source) for source in X.sources]
        endings = question_endings(X)
        cells = [json.dumps([source, ending]) for source, ending in zip(sources, endings)]
        return cls(*(np.asarray(keys, dtype=object) for keys in (sources, endings, cells)))

    def take(self, rows: np.ndarray) -> CellKeys:
        """The keys of ``rows`` (an integer or boolean index)."""
        return CellKeys(self.sources[rows], self.endings[rows], self.cells[rows])


@dataclass(frozen=True)
class CellGaps:
    """The mean edge-minus-cloud score per (source, last sentence) cell, per source, per last sentence and overall.

    A query of an unseen cell gets its source's mean, one of an unseen source the overall mean; a query whose
    source is unknown (a live query) gets its last sentence's mean over every source, else the overall mean.
    """

    cells: dict[str, float]
    sources: dict[str, float]
    endings: dict[str, float]
    overall: float

    @classmethod
    def fit(cls, keys: CellKeys, gap: np.ndarray) -> CellGaps:
        """The means of ``gap`` (one per query of ``keys``) by cell, source and last sentence."""
        return cls(_means(keys.cells, gap), _means(keys.sources, gap), _means(keys.endings, gap), float(np.mean(gap)))

    def predict(self, keys: CellKeys) -> np.ndarray:
        """Each query's looked-up mean gap (cell, else source, else overall; last sentence for an unknown source)."""
        gaps = [self.endings.get(ending, self.overall) if source is None
                else self.cells.get(cell, self.sources.get(source, self.overall))
                for source, ending, cell in zip(keys.sources, keys.endings, keys.cells)]
        return np.array(gaps, dtype=np.float64)


class LookupRouter(Router):
    """The mean edge-minus-cloud score per (source, last sentence) cell, backing off to the source's, then the global mean."""

    name = "lookup"
    learns_scores = True

    def __init__(self, *, random_state: int = 0) -> None:
        super().__init__(random_state=random_state)
        self._state: dict[str, Any] | None = None

    def iter_fit(self, X: QueryFeatures, y: ScoreTargets) -> Iterator[int]:  # type: ignore[override]
        values = score_levels(self.name, X, y)
        edge, cloud = y.scores[:, y.models.index(y.edge)], y.scores[:, y.models.index(y.cloud)]
        both = np.isfinite(edge) & np.isfinite(cloud)
        if not both.any():
            raise ValueError(f"no training query has scores of both {y.edge!r} and {y.cloud!r}")
        gap = (edge - cloud)[both]
        competent = competence_labels(edge[both], cloud[both], mes=y.mes, rule=y.rule, k=y.k)
        keys = CellKeys.of(X).take(both)
        table = CellGaps.fit(keys, gap)
        self._state = {
            "pair": y.pair_settings(),
            "range": float(values[-1] - values[0]),
            "global": table.overall,
            "sources": table.sources,
            "endings": table.endings,
            "cells": table.cells,
            "competence": _means(keys.cells, competent),
        }
        yield 0

    @property
    def fitted_pair(self) -> dict[str, Any]:
        """The edge, cloud, MES, label rule and k the router was fitted for."""
        return dict(self._fitted()["pair"])

    def mean_gap(self, X: QueryFeatures) -> np.ndarray:
        """Each query's looked-up mean edge-minus-cloud score (cell, else source, else global; last sentence for an unknown source)."""
        state = self._fitted()
        return CellGaps(state["cells"], state["sources"], state["endings"], state["global"]).predict(CellKeys.of(X))

    def competence_rate(self, X: QueryFeatures) -> np.ndarray:
        """Each query's cell's share of competent training queries (NaN for an unseen cell)."""
        state = self._fitted()
        return np.array([state["competence"].get(cell, np.nan) for cell in CellKeys.of(X).cells], dtype=np.float64)

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        state = self._fitted()
        return np.clip(0.5 + self.mean_gap(X) / (2 * state["range"]), 0.0, 1.0)

    def competence(self, X: QueryFeatures, *, edge: str, cloud: str, mes: float, rule: LabelRule = "mes", k: float = 1) -> np.ndarray:
        """``predict_proba`` for the fitted pair and label rule; the lookup serves no other pair or MES."""
        fitted = self.fitted_pair
        if (edge, cloud, rule, float(mes), float(k)) != (fitted["edge"], fitted["cloud"], fitted["rule"], fitted["mes"], fitted["k"]):
            raise ValueError(f"{self.name} was fitted for {fitted['edge']} (edge) / {fitted['cloud']} (cloud) at MES "
                             f"{fitted['mes']:g} under the {fitted['rule']} rule: train it for {edge} / {cloud} at MES {mes:g}")
        return self.predict_proba(X)

    def competence_by_level(self, X: QueryFeatures, *, edge: str, cloud: str) -> dict[float, np.ndarray]:
        """No levels: the lookup decides at its fitted MES only."""
        return {}

    def get_state(self) -> dict[str, Any]:
        return self._fitted()

    def set_state(self, state: dict[str, Any]) -> None:
        self._state = state

    def _write_state(self, state: dict[str, Any], directory: Path) -> None:
        (directory / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")

    @classmethod
    def _read_state(cls, directory: Path) -> dict[str, Any]:
        return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))

    def _fitted(self) -> dict[str, Any]:
        if self._state is None:
            raise self._not_fitted()
        return self._state


def _means(keys: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """The mean of ``values`` per key."""
    names, codes = np.unique(keys.astype(str), return_inverse=True)
    sums = np.bincount(codes, weights=np.asarray(values, dtype=np.float64))
    return {str(name): float(total / count) for name, total, count in zip(names, sums, np.bincount(codes))}
