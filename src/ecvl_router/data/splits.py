"""Seeded, deterministic splits: stratified 6:2:2 on (source, label), and held-out sources for cross-domain tests.

With groups (``items.group``: variants of one question, say), every split keeps each group on one side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.model_selection import StratifiedGroupKFold

DEFAULT_RATIOS = (0.6, 0.2, 0.2)
MAX_FOLDS = 20
"""A grouped split is made of whole folds of a stratified group k-fold with at most this many folds."""


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


def stratified_split(
    strata: Sequence[str] | ArrayLike,
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    groups: ArrayLike | None = None,
) -> Split:
    """Split rows so that each stratum (e.g. ``f"{source}|{label}"``) keeps the given ratios.

    The part sizes are the ratios applied to all rows (largest remainder); each stratum's share of every part
    is within one row of its exact proportion. Deterministic for a seed: rows are shuffled within each stratum
    by a generator seeded once, strata being visited in sorted order.

    With ``groups`` (one per row), each group lies in one part (``grouped_split``): sizes and strata then
    follow the ratios as closely as whole groups allow.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {tuple(ratios)}")
    keys = np.asarray([str(s) for s in strata], dtype=object)
    shares = np.asarray(ratios, dtype=np.float64) / sum(ratios)
    if groups is not None:
        return grouped_split(keys, np.asarray(groups, dtype=object), shares, seed=seed)
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


def grouped_split(strata: np.ndarray, groups: np.ndarray, shares: np.ndarray, *, seed: int) -> Split:
    """A split in which each group lies in one part: every part is a number of whole folds of one stratified
    group k-fold (scikit-learn's ``StratifiedGroupKFold``, shuffled with ``seed``).

    k is the fewest folds (2 to ``MAX_FOLDS``) that give every share a whole number of folds (6:2:2 is
    3 + 1 + 1 of 5 folds), else ``MAX_FOLDS`` folds apportioned. Strata too small for k folds are pooled.
    """
    folds_per_part = _folds_per_part(shares)
    folds = int(folds_per_part.sum())
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    tests = [test for _, test in splitter.split(np.zeros(len(strata)), pooled_strata(strata, folds), group_codes(groups, folds))]
    ends = np.cumsum(folds_per_part)
    train, val, test = (
        np.sort(np.concatenate(tests[end - count : end])) if count else np.array([], dtype=np.int64)
        for count, end in zip(folds_per_part, ends)
    )
    return Split(train=train, val=val, test=test)


def _folds_per_part(shares: np.ndarray) -> np.ndarray:
    """Whole folds per part, summing to the fewest folds in which each share is whole (else ``MAX_FOLDS``)."""
    for folds in range(2, MAX_FOLDS + 1):
        quotas = shares * folds
        if np.allclose(quotas, np.round(quotas)):
            return np.round(quotas).astype(int)
    return _apportion(MAX_FOLDS, shares * MAX_FOLDS, np.full(len(shares), MAX_FOLDS))


def shuffled_split(rng: np.random.Generator, n: int, share: float, groups: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A random (first, rest) split of ``n`` rows with ``round(share · n)`` rows first.

    With ``groups``, whole groups are drawn in random order and cut at the group boundary nearest to that
    size (each side keeps at least one group).
    """
    if groups is None:
        order = rng.permutation(n)
        cut = int(round(share * n))
        return order[:cut], order[cut:]
    codes = group_codes(groups, 2)
    rank = rng.permutation(codes.max() + 1)[codes]
    order = np.argsort(rank, kind="stable")
    boundaries = np.cumsum(np.bincount(rank))[:-1]
    cut = int(boundaries[np.argmin(np.abs(boundaries - share * n))])
    return order[:cut], order[cut:]


def group_codes(groups: ArrayLike, parts: int) -> np.ndarray:
    """Integer codes of ``groups``; ValueError when there are fewer groups than ``parts``."""
    names, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if len(names) < parts:
        raise ValueError(f"{len(names)} groups are too few for {parts} parts that keep each group on one side")
    return codes


def pooled_strata(strata: ArrayLike, n_parts: int) -> np.ndarray:
    """Strata with fewer than ``n_parts`` members pooled into one; a pool still too small joins the largest stratum.

    Every resulting stratum has at least ``n_parts`` members whenever there are at least ``n_parts`` queries.
    """
    strata = np.asarray(strata, dtype=object)
    values, counts = np.unique(strata, return_counts=True)
    rare = np.isin(strata, values[counts < n_parts])
    if not rare.any():
        return strata
    pooled = np.where(rare, "(rare)", strata)
    if rare.sum() < n_parts:
        pooled = np.where(rare, values[np.argmax(counts)], strata)
    return pooled


def strata_of(sources: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Stratum keys preserving the joint distribution of source and label."""
    return np.asarray([f"{s}|{int(l)}" for s, l in zip(sources, labels)], dtype=object)


def holdout_split(
    sources: ArrayLike,
    labels: ArrayLike,
    holdout: Sequence[str],
    *,
    seed: int = 0,
    val_share: float = 0.25,
    groups: ArrayLike | None = None,
) -> Split:
    """Test on the held-out sources; train and validate (stratified) on the rest.

    With ``groups``, train and validation keep each group on one side, and a group may not span held-out
    and kept sources (ValueError naming such groups).
    """
    sources = np.asarray(sources, dtype=object)
    unknown = sorted(set(holdout) - set(sources))
    if unknown:
        raise ValueError(f"held-out sources not in the data: {', '.join(unknown)}; sources: {', '.join(sorted(set(sources)))}")
    test_mask = np.isin(sources, list(holdout))
    if test_mask.all():
        raise ValueError("every source is held out: nothing left to train on")
    rest = np.flatnonzero(~test_mask)
    rest_groups = None
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        straddling = sorted(set(groups[test_mask]) & set(groups[rest]))
        if straddling:
            raise ValueError(f"{len(straddling)} group(s) span held-out and kept sources (e.g. {', '.join(map(str, straddling[:3]))}); "
                             "a group must lie on one side of the split")
        rest_groups = groups[rest]
    inner = stratified_split(strata_of(sources[rest], np.asarray(labels)[rest]), seed=seed, ratios=(1 - val_share, val_share, 0),
                             groups=rest_groups)
    return Split(train=rest[inner.train], val=rest[inner.val], test=np.flatnonzero(test_mask))
