"""Repeated stratified k-fold cross-validation of routing policies, and the statistics that compare them.

Every policy is scored on the same test folds, so differences between policies are *paired*. Folds of
one repetition share training data, which makes fold results correlated; the confidence intervals use the
corrected resampled t statistic of Nadeau and Bengio (2003), whose variance is
``s² · (1/J + n_test/n_train)`` over the ``J`` fold results instead of the naive ``s²/J``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

from ecvl_router.data.splits import strata_of


@dataclass(frozen=True)
class Fold:
    """One fold of one repetition: row indices of the training and the test part."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def fold_strata(sources: Sequence[str] | np.ndarray, labels: np.ndarray, n_folds: int) -> np.ndarray:
    """(source, label) strata; a stratum with fewer than ``n_folds`` members falls back to its label alone."""
    strata = strata_of(sources, labels)
    values, counts = np.unique(strata, return_counts=True)
    label_only = np.array([f"label={int(label)}" for label in labels], dtype=object)
    return np.where(np.isin(strata, values[counts < n_folds]), label_only, strata)


def repeated_stratified_folds(
    strata: np.ndarray, *, n_folds: int = 5, n_repeats: int = 3, seed: int = 0, groups: np.ndarray | None = None
) -> list[Fold]:
    """``n_repeats`` stratified ``n_folds``-fold partitions, each repetition shuffled with its own seed;
    with ``groups``, each group lies in one test fold (stratified group k-fold)."""
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    if n_repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {n_repeats}")
    strata = np.asarray(strata)
    _, counts = np.unique(strata, return_counts=True)
    if counts.max() < n_folds:
        raise ValueError(f"{len(strata)} queries are too few for {n_folds} folds")
    folds = []
    for repeat in range(n_repeats):
        for index, (train, test) in enumerate(inner_folds(strata, n_folds, seed + repeat, groups)):
            folds.append(Fold(repeat, index, train, test))
    return folds


def pooled_strata(strata: np.ndarray, n_parts: int) -> np.ndarray:
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


def validation_split(
    strata: np.ndarray, seed: int, share: float = 0.25, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified (fit, validation) split of a training set's rows, ``share`` for validation (the paper's recipe).

    With ``groups``, each group lies on one side: the validation part is one fold of a stratified group
    k-fold with k = round(1 / share), so its share is ``share`` up to the size of the groups.
    """
    if groups is None:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        fit, val = next(splitter.split(np.zeros(len(strata)), pooled_strata(strata, 2)))
    else:
        parts = max(2, round(1 / share))
        grouped = StratifiedGroupKFold(n_splits=parts, shuffle=True, random_state=seed)
        fit, val = next(grouped.split(np.zeros(len(strata)), pooled_strata(strata, parts), _group_codes(groups, parts)))
    return np.sort(fit), np.sort(val)


def inner_folds(
    strata: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, held-out) index pairs, each of ``groups`` (if given) on one side; strata too small
    for ``folds`` parts are pooled."""
    pooled = pooled_strata(strata, folds)
    if groups is None:
        return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(strata)), pooled))
    grouped = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(grouped.split(np.zeros(len(strata)), pooled, _group_codes(groups, folds)))


def _group_codes(groups: np.ndarray, parts: int) -> np.ndarray:
    """Integer codes of ``groups``; ValueError when there are fewer groups than ``parts``."""
    names, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if len(names) < parts:
        raise ValueError(f"{len(names)} groups are too few for {parts} parts that keep each group on one side")
    return codes


@dataclass(frozen=True)
class Interval:
    """A mean over folds with its 95 % confidence interval."""

    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def corrected_interval(values: Sequence[float], test_share: float, level: float = 0.95) -> Interval:
    """Mean and confidence interval of fold results by the corrected resampled t statistic.

    ``test_share`` is n_test / n_train of one fold (1 / (k − 1) for k-fold). With a single value the
    interval is unbounded.
    """
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, -math.inf, math.inf)
    variance = float(x.var(ddof=1)) * (1 / len(x) + test_share)
    half = float(stats.t.ppf(0.5 + level / 2, df=len(x) - 1)) * math.sqrt(variance)
    return Interval(mean, mean - half, mean + half)


def headroom_share(value: float, trivial: float, ceiling: float) -> float:
    """``(value − trivial) / (ceiling − trivial)``: the share of the available gain captured (NaN without headroom)."""
    gap = ceiling - trivial
    return (value - trivial) / gap if gap > 1e-12 else math.nan
