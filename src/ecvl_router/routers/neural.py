"""The training loop every neural router shares (paper, section 4.2.2).

Binary cross-entropy on logits, Adam with the OneCycle schedule (``max_lr = learning_rate`` over
``epochs x batches`` steps), shuffled mini-batches. Training is seeded and deterministic on the CPU:
it runs under a forked torch RNG seeded with ``random_state`` (the caller's global RNG is untouched)
and shuffles with a dedicated generator. The CPU kernels these networks use are deterministic, so
``torch.use_deterministic_algorithms`` is not switched on (it slowed training by about 20 % here and
would change global state). Training runs on ``num_threads`` CPU threads (see ``routers.threads``).
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecvl_router.features.features import QueryFeatures
from ecvl_router.routers.base import Router, positive_int
from ecvl_router.routers.inputs import BRANCHES, InputEncoder, check_branches, check_features, check_labels
from ecvl_router.routers.threads import DEFAULT_THREADS, limited_threads

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
_PREDICT_CHUNK = 8192


class NeuralRouter(Router):
    """A router whose network maps the enabled branches' tensors (in ``BRANCHES`` order) to one logit."""

    def __init__(
        self,
        *,
        random_state: int = 0,
        branches: tuple[str, ...] = BRANCHES,
        epochs: int = 50,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        num_threads: int = DEFAULT_THREADS,
    ) -> None:
        super().__init__(random_state=random_state)
        self.branches = check_branches(branches)
        self.epochs = positive_int("epochs", epochs)
        self.batch_size = positive_int("batch_size", batch_size)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.num_threads = positive_int("num_threads", num_threads)
        self._encoder: InputEncoder | None = None
        self._network: nn.Module | None = None

    @abstractmethod
    def build_network(self, dims: dict[str, int]) -> nn.Module:
        """A fresh network for the enabled branches of widths ``dims``; ``forward(*tensors)`` -> logits (n,)."""

    @property
    def n_epochs(self) -> int:
        return self.epochs

    def iter_fit(self, X: QueryFeatures, y: np.ndarray) -> Iterator[int]:
        check_features(X)
        targets = torch.from_numpy(check_labels(X, y))
        self._encoder = InputEncoder.fit(X, self.branches)
        inputs = _tensors(self._encoder, X)
        n = len(targets)
        steps_per_epoch = math.ceil(n / self.batch_size)
        with limited_threads(self.num_threads), seeded(self.random_state):
            self._network = self.build_network(self._encoder.dims)
            optimizer = torch.optim.Adam(self._network.parameters(), lr=self.learning_rate)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.learning_rate, total_steps=self.epochs * steps_per_epoch
            )
            loss_function = nn.BCEWithLogitsLoss()
            shuffler = torch.Generator().manual_seed(self.random_state)
            for epoch in range(self.epochs):
                self._network.train()
                order = torch.randperm(n, generator=shuffler)
                total = 0.0
                for start in range(0, n, self.batch_size):
                    batch = order[start : start + self.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_function(self._network(*(x[batch] for x in inputs)), targets[batch])
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += loss.item() * len(batch)
                logger.debug("%s epoch %d/%d: training loss %.4f", self.name, epoch + 1, self.epochs, total / n)
                yield epoch

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        if self._network is None or self._encoder is None:
            raise self._not_fitted()
        inputs = _tensors(self._encoder, check_features(X))
        self._network.eval()
        with torch.inference_mode():
            chunks = [
                torch.sigmoid(self._network(*(x[start : start + _PREDICT_CHUNK] for x in inputs)))
                for start in range(0, len(X), _PREDICT_CHUNK)
            ]
        return torch.cat(chunks).to(torch.float64).numpy()

    def get_state(self) -> dict[str, Any]:
        if self._network is None or self._encoder is None:
            raise self._not_fitted()
        weights = {key: value.detach().clone() for key, value in self._network.state_dict().items()}
        return {"inputs": self._encoder.state(), "network": weights}

    def set_state(self, state: dict[str, Any]) -> None:
        encoder = InputEncoder.from_state(state["inputs"])
        if encoder.branches != self.branches:
            raise ValueError(f"state was trained on branches {encoder.branches}, this router uses {self.branches}")
        if self._network is None or self._encoder is None or self._encoder.dims != encoder.dims:
            self._network = self.build_network(encoder.dims)
        self._network.load_state_dict(state["network"])
        self._encoder = encoder

    def _write_state(self, state: dict[str, Any], directory: Path) -> None:
        torch.save(state, directory / STATE_FILE)

    @classmethod
    def _read_state(cls, directory: Path) -> dict[str, Any]:
        return torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)


class ConcatenatedInput(nn.Module):
    """Applies ``body`` (rows -> logits of shape (n,)) to the branches side by side."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, *branches: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat(branches, dim=1))


def _tensors(encoder: InputEncoder, X: QueryFeatures) -> list[torch.Tensor]:
    return [torch.from_numpy(matrix) for matrix in encoder.transform(X).values()]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """A forked torch CPU RNG seeded with ``seed``; the caller's RNG state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def dropout_rate(value: Any) -> float:
    """``value`` as a float; raises ValueError unless it lies in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {value!r}")
    return float(value)
