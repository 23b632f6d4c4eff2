"""The demo's simulation ground truth and the exact score and competence probabilities it implies.

``generate_demo`` writes, next to the dataset (not inside ``items``/``responses``), every (item, model)'s
visible mean margin ``mu_im`` (``simulation_truth.parquet``) and the noise constants of the latent model
(``simulation_truth.json``). No router and no feature reads them; only the ``bayes`` reference policy does:
given ``mu_im``, a score is ``clip(rint(center + scale * (mu_im + u_i + e_im)), score_min, score_max)`` with
the hidden hardness ``u_i ~ N(0, sigma_item)`` shared by all models of an item and the noise
``e_im ~ N(0, sigma_noise)`` independent, so the best any router can know about an item is computed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike
from scipy.special import ndtr

from ecvl_router.data.rsd import PairView
from ecvl_router.labels import LabelRule, competence_labels
from ecvl_router.manifest import write_json_atomic

TRUTH_PARQUET = "simulation_truth.parquet"
TRUTH_JSON = "simulation_truth.json"
QUADRATURE_NODES = 40
_CONSTANTS = ("sigma_item", "sigma_noise", "score_center", "score_scale", "score_min", "score_max")
_NOTE = "Simulation ground truth of the demo benchmark: read by no router and no feature; only by the bayes reference policy."


@dataclass(frozen=True, eq=False)
class SimulationTruth:
    """Visible mean margins (index ``item_id``, one column per model) and the latent model's noise constants."""

    margins: pd.DataFrame
    sigma_item: float
    sigma_noise: float
    score_center: float
    score_scale: float
    score_min: int
    score_max: int

    @property
    def scores(self) -> np.ndarray:
        """The possible scores, ``score_min`` to ``score_max``."""
        return np.arange(self.score_min, self.score_max + 1)

    def visible_margins(self, item_ids: ArrayLike, model: str) -> np.ndarray:
        """``mu_im`` of ``model`` for each item; raises KeyError naming a missing model or item."""
        if model not in self.margins.columns:
            raise KeyError(f"model {model!r} not in the simulation truth; models: {', '.join(self.margins.columns)}")
        ids = np.asarray(item_ids, dtype=object)
        positions = self.margins.index.get_indexer(ids)
        values = self.margins[model].to_numpy(dtype=np.float64)[positions]
        unknown = (positions < 0) | np.isnan(values)
        if unknown.any():
            raise KeyError(f"item {ids[unknown][0]!r} has no visible margin for model {model!r} in the simulation truth "
                           f"({int(unknown.sum())} such item(s))")
        return values

    def _score_probabilities(self, mean: np.ndarray, sd: float) -> np.ndarray:
        """P(score = s) for s in ``scores`` when the margin is N(``mean``, ``sd``); shape ``mean.shape + (n_scores,)``."""
        inner_bounds = (self.scores[1:] - 0.5 - self.score_center) / self.score_scale  # margin where rint steps up
        below = ndtr((inner_bounds - mean[..., None]) / sd)
        shape = (*mean.shape, 1)
        return np.diff(np.concatenate([np.zeros(shape), below, np.ones(shape)], axis=-1), axis=-1)

    def score_distribution(self, item_ids: ArrayLike, model: str) -> np.ndarray:
        """P(score = s | visible) for s = score_min..score_max, shape (n_items, n_scores); rows sum to 1."""
        total_sd = float(np.hypot(self.sigma_item, self.sigma_noise))
        return self._score_probabilities(self.visible_margins(item_ids, model), total_sd)

    def competence_probability(
        self, item_ids: ArrayLike, edge: str, cloud: str, *, mes: float, rule: LabelRule = "mes", k: float = 1
    ) -> np.ndarray:
        """P(edge competent | visible) under ``labels.competence_labels``'s rule, per item, shape (n_items,).

        Both scores share the item's hidden hardness ``u``; given ``u`` they are independent. The expectation
        over ``u`` uses Gauss–Hermite quadrature with ``QUADRATURE_NODES`` nodes.
        """
        if edge == cloud:
            raise ValueError(f"edge and cloud must be different models, got {edge!r} twice")
        nodes, weights = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
        hidden = np.sqrt(2.0) * self.sigma_item * nodes
        edge_scores, cloud_scores = (
            self._score_probabilities(self.visible_margins(item_ids, model)[:, None] + hidden, self.sigma_noise)
            for model in (edge, cloud)
        )  # (n_items, nodes, n_scores) each
        score_edge, score_cloud = np.meshgrid(self.scores, self.scores, indexing="ij")
        competent = competence_labels(score_edge, score_cloud, mes=mes, rule=rule, k=k).astype(np.float64)
        probability = np.einsum("ijs,st,ijt,j->i", edge_scores, competent, cloud_scores, weights / np.sqrt(np.pi))
        return np.clip(probability, 0.0, 1.0)


def bayes_probabilities(truth: SimulationTruth, pair_view: PairView, *, mes: float, rule: LabelRule = "mes", k: float = 1) -> np.ndarray:
    """The Bayes reference policy's P(edge competent) for each item of ``pair_view``, aligned with its ``item_ids``."""
    return truth.competence_probability(pair_view.item_ids, pair_view.edge, pair_view.cloud, mes=mes, rule=rule, k=k)


def write_truth(folder: Path, truth: SimulationTruth) -> None:
    """Write ``TRUTH_PARQUET`` (item_id, model, visible_margin; item-major) and ``TRUTH_JSON`` into ``folder``."""
    n_items, n_models = truth.margins.shape
    values = truth.margins.to_numpy(dtype=np.float64).ravel()
    known = ~np.isnan(values)
    table = pa.table({
        "item_id": pa.array(np.repeat(truth.margins.index.to_numpy(dtype=object), n_models)[known], pa.string()),
        "model": pa.array(np.tile(truth.margins.columns.to_numpy(dtype=object), n_items)[known], pa.string()),
        "visible_margin": pa.array(values[known], pa.float64()),
    })
    pq.write_table(table, folder / TRUTH_PARQUET)
    write_json_atomic(folder / TRUTH_JSON, {"note": _NOTE, **{name: getattr(truth, name) for name in _CONSTANTS}})


def load_truth(root: Path) -> SimulationTruth | None:
    """The simulation truth of the dataset folder ``root``, or None when it has none (not a demo, or an older one)."""
    root = Path(root)
    if not (root / TRUTH_PARQUET).is_file():
        return None
    constants = json.loads((root / TRUTH_JSON).read_text(encoding="utf-8"))
    long = pq.read_table(root / TRUTH_PARQUET).to_pandas()
    margins = long.pivot(index="item_id", columns="model", values="visible_margin")
    return SimulationTruth(margins=margins, **{name: constants[name] for name in _CONSTANTS})
