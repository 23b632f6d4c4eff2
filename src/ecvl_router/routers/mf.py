"""Matrix factorisation in the spirit of RouteLLM's MF router, for one (edge, cloud) pair.

Both models get a learned embedding ``v_edge``, ``v_cloud`` in R^dim; the query's concatenated branches
``x`` are projected into the same space by ``W``; the logit of edge competence is
``<v_edge - v_cloud, W x> + b``. The score is bilinear in model and query, hence linear in ``x`` for a
fixed pair: it cannot model interactions between text and image features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecvl_router.routers.base import positive_int
from ecvl_router.routers.neural import ConcatenatedInput, NeuralRouter


class PairFactorisation(nn.Module):
    """``<v_edge - v_cloud, W x> + b`` for rows ``x``."""

    EDGE, CLOUD = 0, 1

    def __init__(self, width: int, dim: int) -> None:
        super().__init__()
        self.models = nn.Embedding(2, dim)
        self.projection = nn.Linear(width, dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gap = self.models.weight[self.EDGE] - self.models.weight[self.CLOUD]
        return self.projection(x) @ gap + self.bias


class MFRouter(NeuralRouter):
    """Matrix-factorisation router with a ``dim``-dimensional latent space; ECVL-Router's optimiser settings."""

    name = "mf"

    def __init__(self, *, dim: int = 128, **common: Any) -> None:
        super().__init__(**common)
        self.dim = positive_int("dim", dim)

    def build_network(self, dims: dict[str, int]) -> nn.Module:
        return ConcatenatedInput(PairFactorisation(sum(dims.values()), self.dim))
