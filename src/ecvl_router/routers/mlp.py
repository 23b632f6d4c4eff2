"""A multilayer perceptron baseline (paper, section 5.1): three hidden layers over the concatenated branches."""

from __future__ import annotations

from typing import Any

from torch import nn

from ecvl_router.routers.base import positive_int
from ecvl_router.routers.neural import ConcatenatedInput, NeuralRouter, dropout_rate


class MLPRouter(NeuralRouter):
    """Concatenated branches -> ``hidden`` ReLU layers with dropout -> logit; ECVL-Router's optimiser settings."""

    name = "mlp"

    def __init__(self, *, hidden: tuple[int, ...] = (512, 256, 128), dropout: float = 0.3, **common: Any) -> None:
        super().__init__(**common)
        if isinstance(hidden, (str, int)) or not hidden:
            raise ValueError(f"hidden must list the hidden layers' widths, got {hidden!r}")
        self.hidden = tuple(positive_int("hidden layer width", width) for width in hidden)
        self.dropout = dropout_rate(dropout)

    def build_network(self, dims: dict[str, int]) -> nn.Module:
        layers: list[nn.Module] = []
        width = sum(dims.values())
        for out in self.hidden:
            layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(self.dropout)]
            width = out
        return ConcatenatedInput(nn.Sequential(*layers, nn.Linear(width, 1), nn.Flatten(start_dim=0)))

