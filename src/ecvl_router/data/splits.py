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


def _apportion(total: int, quotas: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, each within its cap, closest to ``quotas`` (largest remainder)."""
    counts = np.minimum(np.floor(quotas), caps).astype(int)
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    while counts.sum() < total:
        for i in order:
            if counts.sum() < total and counts[i] < caps[i]:
                counts[i] += 1
    return counts


def stratified_split(strata: Sequence[str] | ArrayLike, *, seed: int = 0, ratios: Sequence[float] = DEFAULT_RATIOS) -> Split:
    """Split rows so that each stratum (e.g. ``f"{source}|{label}"``) keeps the given ratios.

    The part sizes are the ratios applied to all rows (largest remainder); each stratum's share of every part
    is within one row of its exact proportion. Deterministic for a seed: rows are shuffled within each stratum
    by a generator seeded once, strata being visited in sorted order.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {tuple(ratios)}")
    keys = np.asarray([str(s) for s in strata], dtype=object)
    shares = np.asarray(ratios, dtype=np.float64) / sum(ratios)
    n = len(keys)
    totals = _apportion(n, shares * n, np.full(3, n))
    rng = np.random.default_rng(seed)
    rows_by_stratum = []
    for stratum in sorted(set(keys)):
        rows = np.flatnonzero(keys == stratum)
        rows_by_stratum.append(rows[rng.permutation(len(rows))])
    sizes = np.array([len(rows) for rows in rows_by_stratum])
    train_counts = _apportion(totals[0], shares[0] * sizes, sizes)
    val_counts = _apportion(totals[1], shares[1] * sizes, sizes - train_counts)
    parts: list[list[np.ndarray]] = [[], [], []]
    for rows, n_train, n_val in zip(rows_by_stratum, train_counts, val_counts):
        parts[0].append(rows[:n_train])
        parts[1].append(rows[n_train : n_train + n_val])
        parts[2].append(rows[n_train + n_val :])
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
