"""ECVL-Router (paper, section 4.2.1): a small Transformer over one token per input branch.

Each enabled branch is linearly projected to ``d_model`` (the text and image embeddings; the
standardised statistics are "linearly embedded" the same way). The tokens — three with every branch
enabled; a disabled branch's token is dropped — pass a ``layers``-deep ``nn.TransformerEncoder``
(``heads`` heads, feed-forward width ``ffn``, ``dropout``), are mean-pooled and a linear head gives the
logit. Mean pooling keeps the head's input ``d_model``-wide, as the paper's ``sigma(w^T h_out + b)`` with
hidden size 256 reads, and gives the same head for one, two or three tokens (the ablations); flattening
would tie the head to the number of tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecvl_router.routers.base import positive_int
from ecvl_router.routers.neural import NeuralRouter, dropout_rate


class ECVLNetwork(nn.Module):
    """Per-branch projections -> Transformer encoder over the branch tokens -> mean pool -> logit."""

    def __init__(self, dims: dict[str, int], *, d_model: int, layers: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(width, d_model) for width in dims.values())
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, *branches: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([project(x) for project, x in zip(self.projections, branches, strict=True)], dim=1)
        return self.head(self.encoder(tokens).mean(dim=1)).squeeze(-1)


class ECVLRouter(NeuralRouter):
    """The paper's router: d = 256, 2 layers, 4 heads, FFN 512, dropout 0.3; Adam + OneCycle, 50 epochs, batch 64."""

    name = "ecvl"

    def __init__(
        self, *, d_model: int = 256, layers: int = 2, heads: int = 4, ffn: int = 512, dropout: float = 0.3, **common: Any
    ) -> None:
        super().__init__(**common)
        self.d_model = positive_int("d_model", d_model)
        self.layers = positive_int("layers", layers)
        self.heads = positive_int("heads", heads)
        self.ffn = positive_int("ffn", ffn)
        self.dropout = dropout_rate(dropout)
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")

    def build_network(self, dims: dict[str, int]) -> nn.Module:
        return ECVLNetwork(
            dims, d_model=self.d_model, layers=self.layers, heads=self.heads, ffn=self.ffn, dropout=self.dropout
        )
