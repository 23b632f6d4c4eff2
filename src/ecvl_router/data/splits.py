"""Seeded, deterministic splits: stratified 6:2:2 on (source, label), and held-out sources for cross-domain tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_RATIOS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class Split:
    """Row indices (into the arrays the split was computed from) of the train, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def _allocate(size: int, ratios: Sequence[float]) -> list[int]:
    """Split ``size`` into parts proportional to ``ratios`` (largest remainder, earlier parts win ties)."""
    exact = np.asarray(ratios, dtype=np.float64) / sum(ratios) * size
    counts = np.floor(exact).astype(int)
    order = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: size - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def stratified_split(strata: Sequence[str] | ArrayLike, *, seed: int = 0, ratios: Sequence[float] = DEFAULT_RATIOS) -> Split:
    """Split rows so that each stratum (e.g. ``f"{source}|{label}"``) keeps the given ratios.

    Deterministic for a seed: rows are shuffled within each stratum with a generator derived from the seed,
    and strata are visited in sorted order.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {tuple(ratios)}")
    keys = np.asarray([str(s) for s in strata], dtype=object)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for stratum in sorted(set(keys)):
        rows = np.flatnonzero(keys == stratum)
        rows = rows[rng.permutation(len(rows))]
        start = 0
        for part, count in zip(parts, _allocate(len(rows), ratios)):
            part.append(rows[start : start + count])
            start += count
    train, val, test = (np.sort(np.concatenate(p)) if p else np.array([], dtype=np.int64) for p in parts)
    return Split(train=train, val=val, test=test)


def strata_of(sources: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Stratum keys preserving the joint distribution of source and label."""
    return np.asarray([f"{s}|{int(l)}" for s, l in zip(sources, labels)], dtype=object)


def holdout_split(sources: ArrayLike, labels: ArrayLike, holdout: Sequence[str], *, seed: int = 0, val_share: float = 0.25) -> Split:
    """Test on the held-out sources; train and validate (stratified) on the rest."""
    sources = np.asarray(sources, dtype=object)
    unknown = sorted(set(holdout) - set(sources))
    if unknown:
        raise ValueError(f"held-out sources not in the data: {', '.join(unknown)}; sources: {', '.join(sorted(set(sources)))}")
    test_mask = np.isin(sources, list(holdout))
    if test_mask.all():
        raise ValueError("every source is held out: nothing left to train on")
    rest = np.flatnonzero(~test_mask)
    inner = stratified_split(strata_of(sources[rest], np.asarray(labels)[rest]), seed=seed, ratios=(1 - val_share, val_share, 0))
    return Split(train=rest[inner.train], val=rest[inner.val], test=np.flatnonzero(test_mask))
