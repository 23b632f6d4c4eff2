"""One router for every model and every MES: an ordinal score model over all models of a dataset.

A shared query representation ``h(x)`` (the enabled branches projected, fused by a small MLP) meets a
learned embedding ``e_m`` and bias ``b_m`` of each model ``m``; for each score level ``v_j`` of the
dataset (its observed scores above the lowest) the router predicts::

    P(score_m >= v_j | x) = sigmoid(<h(x), e_m> + b_m - theta_{m,j}),   theta_{m,1} < theta_{m,2} < ...

a cumulative-link (ordinal logistic) model whose thresholds increase by construction, so the predicted
probabilities fall monotonically with the level. Every (item, model) answer is a training row, so a
dataset with M models gives M times the rows of one pair. The competence of any (edge, cloud) pair under
any MES or label rule follows from the two predicted distributions, taken as independent given the
query (``competence_from_distributions``); ``predict_proba`` gives it for the pair the router was fitted
for, ``competence`` for any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LabelRule
from ecvl_router.routers.base import positive_int
from ecvl_router.routers.inputs import InputEncoder, check_features
from ecvl_router.routers.neural import NeuralRouter, dropout_rate, seeded
from ecvl_router.routers.threads import limited_threads


@dataclass(frozen=True)
class ScoreTargets:
    """What the multi-model router learns from: every model's score per query, and the pair to decide for.

    ``scores`` is (n queries, n models) with NaN where a model has no answer; ``edge``/``cloud``, ``mes``,
    ``rule`` and ``k`` define the competence ``predict_proba`` reports after fitting.
    """

    scores: np.ndarray
    models: tuple[str, ...]
    edge: str
    cloud: str
    mes: float
    rule: LabelRule = "mes"
    k: float = 1

    def __post_init__(self) -> None:
        if self.scores.ndim != 2 or self.scores.shape[1] != len(self.models):
            raise ValueError(f"scores must be (queries, {len(self.models)} models), got shape {self.scores.shape}")
        for model in (self.edge, self.cloud):
            if model not in self.models:
                raise KeyError(f"model {model!r} has no scores; models: {', '.join(self.models)}")

    def __len__(self) -> int:
        return len(self.scores)

    def pair_settings(self) -> dict[str, Any]:
        """The pair to decide for: edge, cloud, MES, label rule and k, as keyword arguments of ``competence``."""
        return {"edge": self.edge, "cloud": self.cloud, "mes": float(self.mes), "rule": self.rule, "k": float(self.k)}


def score_levels(router: str, X: QueryFeatures, y: ScoreTargets) -> np.ndarray:
    """The distinct observed scores of ``y`` (ascending), after checking that ``router`` can learn from ``X`` and ``y``."""
    if not isinstance(y, ScoreTargets):
        raise TypeError(f"{router} learns from ScoreTargets (every model's scores), got {type(y).__name__}")
    check_features(X)
    if len(y) != len(X):
        raise ValueError(f"targets hold {len(y)} queries but X has {len(X)}")
    values = np.unique(y.scores[np.isfinite(y.scores)])
    if len(values) < 2:
        raise ValueError("the scores take a single value; there is nothing to learn")
    return values


def competence_from_distributions(
    values: np.ndarray, p_edge: np.ndarray, p_cloud: np.ndarray, *, mes: float, rule: LabelRule = "mes", k: float = 1
) -> np.ndarray:
    """P(edge competent) from the two score distributions (n, len(values)) over ``values``, independent given the query.

    The MES rule (Eq. 2) reduces to ``1 − P(cloud ≥ MES)·(1 − P(edge ≥ MES))``; win-hard and win-soft(k)
    sum P(cloud = v)·P(edge ≥ v − k) over the levels (k = 0 for win-hard).
    """
    values = np.asarray(values, dtype=np.float64)

    def at_least(p: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
        reached = values[None, :] >= np.atleast_1d(threshold)[:, None]  # (thresholds, levels)
        return p @ reached.T.astype(np.float64)

    if rule == "mes":
        return 1.0 - at_least(p_cloud, mes)[:, 0] * (1.0 - at_least(p_edge, mes)[:, 0])
    if rule in ("win-hard", "win-soft"):
        margin = k if rule == "win-soft" else 0.0
        return np.clip(np.sum(p_cloud * at_least(p_edge, values - margin), axis=1), 0.0, 1.0)
    raise ValueError(f"unknown label rule {rule!r}")


class OrdinalScoreNetwork(nn.Module):
    """Branches -> shared query vector; per model an embedding, a bias and increasing level thresholds."""

    def __init__(self, dims: dict[str, int], n_models: int, n_levels: int, *, d_model: int, dropout: float) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(width, d_model) for width in dims.values())
        self.fusion = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout))
        self.model_vectors = nn.Embedding(n_models, d_model)
        nn.init.normal_(self.model_vectors.weight, std=d_model**-0.5)
        self.model_bias = nn.Parameter(torch.zeros(n_models))
        self.first_threshold = nn.Parameter(torch.zeros(n_models, 1))
        self.threshold_steps = nn.Parameter(torch.zeros(n_models, max(n_levels - 1, 0)))

    def forward(self, *branches: torch.Tensor) -> torch.Tensor:
        """Logits of P(score_m >= v_j): shape (queries, models, levels), decreasing along the levels."""
        h = self.fusion(sum(project(x) for project, x in zip(self.projections, branches, strict=True)))
        ability = h @ self.model_vectors.weight.T + self.model_bias
        thresholds = torch.cat([self.first_threshold, self.first_threshold + torch.cumsum(F.softplus(self.threshold_steps), 1)], 1)
        return ability[:, :, None] - thresholds[None, :, :]


class ECVLMultiRouter(NeuralRouter):
    """The multi-model ordinal router (``ecvl-multi``): d_model-wide fusion, dropout, AdamW with weight decay.

    Its hyperparameters and saved state extend ``NeuralRouter``'s (30 epochs by default instead of 50).
    """

    name = "ecvl-multi"
    learns_scores = True

    def __init__(self, *, d_model: int = 128, dropout: float = 0.3, epochs: int = 30, weight_decay: float = 1e-2, **common: Any) -> None:
        super().__init__(epochs=epochs, **common)
        self.d_model = positive_int("d_model", d_model)
        self.dropout = dropout_rate(dropout)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self._models: tuple[str, ...] = ()
        self._values: np.ndarray = np.empty(0)
        self._pair: dict[str, Any] = {}

    def build_network(self, dims: dict[str, int]) -> OrdinalScoreNetwork:
        return OrdinalScoreNetwork(dims, len(self._models), len(self._values) - 1, d_model=self.d_model, dropout=self.dropout)

    @property
    def models(self) -> tuple[str, ...]:
        """The models the router was fitted on, in its embedding order."""
        return self._models

    @property
    def fitted_pair(self) -> dict[str, Any]:
        """The edge, cloud, MES, rule and k ``predict_proba`` reports for."""
        return dict(self._pair)

    @property
    def score_values(self) -> np.ndarray:
        """The score levels of the predicted distributions, ascending."""
        return self._values

    def iter_fit(self, X: QueryFeatures, y: ScoreTargets) -> Iterator[int]:
        self._values = score_levels(self.name, X, y)
        self._models, self._pair = tuple(y.models), y.pair_settings()
        self._encoder = InputEncoder.fit(X, self.branches)
        inputs = [torch.from_numpy(m) for m in self._encoder.transform(X).values()]
        known = torch.from_numpy(np.isfinite(y.scores))
        reached = torch.from_numpy((np.nan_to_num(y.scores, nan=-np.inf)[:, :, None] >= self._values[None, None, 1:]).astype(np.float32))
        with limited_threads(self.num_threads), seeded(self.random_state):
            self._network = self.build_network(self._encoder.dims)
            optimizer = torch.optim.AdamW(self._network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            steps = self.epochs * math.ceil(len(X) / self.batch_size)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.learning_rate, total_steps=steps)
            shuffler = torch.Generator().manual_seed(self.random_state)
            for epoch in range(self.epochs):
                self._network.train()
                for batch in torch.randperm(len(X), generator=shuffler).split(self.batch_size):
                    optimizer.zero_grad(set_to_none=True)
                    logits = self._network(*(x[batch] for x in inputs))
                    mask = known[batch][:, :, None].expand_as(logits)
                    loss = F.binary_cross_entropy_with_logits(logits[mask], reached[batch][mask])
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                yield epoch

    def score_distribution(self, X: QueryFeatures, model: str) -> np.ndarray:
        """P(score = v) for each level of ``score_values``: shape (n, levels), rows sum to 1."""
        return self._distributions(X, [model])[0]

    def competence(self, X: QueryFeatures, *, edge: str, cloud: str, mes: float, rule: LabelRule = "mes", k: float = 1) -> np.ndarray:
        """P(edge competent) for any pair of the fitted models, at any MES or label rule."""
        p_edge, p_cloud = self._distributions(X, [edge, cloud])
        return competence_from_distributions(self._values, p_edge, p_cloud, mes=mes, rule=rule, k=k)

    def competence_by_level(self, X: QueryFeatures, *, edge: str, cloud: str) -> dict[float, np.ndarray]:
        """P(edge competent) under the MES rule at every score level above the lowest, from one forward pass."""
        p_edge, p_cloud = self._distributions(X, [edge, cloud])
        return {float(level): competence_from_distributions(self._values, p_edge, p_cloud, mes=float(level))
                for level in self._values[1:]}

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        if self._network is None:
            raise self._not_fitted()
        return self.competence(X, **self._pair)

    def _model_index(self, model: str) -> int:
        if self._network is None:
            raise self._not_fitted()
        if model not in self._models:
            raise KeyError(f"model {model!r} was not among the router's training models: {', '.join(self._models)}")
        return self._models.index(model)

    def _distributions(self, X: QueryFeatures, models: list[str]) -> list[np.ndarray]:
        """Each model's score distribution (n, levels) from one forward pass of the network."""
        rows = [self._model_index(model) for model in models]
        assert self._network is not None and self._encoder is not None
        inputs = [torch.from_numpy(m) for m in self._encoder.transform(check_features(X)).values()]
        self._network.eval()
        with torch.inference_mode():
            at_least = torch.sigmoid(self._network(*inputs)[:, rows, :]).to(torch.float64).numpy()
        ones, zeros = np.ones((len(X), len(rows), 1)), np.zeros((len(X), len(rows), 1))
        distributions = np.clip(np.concatenate([ones, at_least], axis=2) - np.concatenate([at_least, zeros], axis=2), 0.0, 1.0)
        return [distributions[:, index, :] for index in range(len(rows))]

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "models": list(self._models), "values": self._values.tolist(), "pair": dict(self._pair)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._models = tuple(state["models"])
        self._values = np.asarray(state["values"], dtype=np.float64)
        self._pair = dict(state["pair"])
        self._network = None  # the network's shape follows the models and levels: rebuild it
        super().set_state(state)
