"""The routers' own inner cross-validation: folds that keep each group whole, and ridge regression tuned on them.

Variants of one question (a group) are near-copies; a penalty chosen on folds that split a group rewards
memorising the group. When the features carry groups, every inner split here keeps each group on one side;
without groups the splits are the plain (stratified) k-fold ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Self

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

logger = logging.getLogger(__name__)

Splits = list[tuple[np.ndarray, np.ndarray]]


def inner_splits(n_rows: int, folds: int, seed: int, *, labels: np.ndarray | None = None, groups: np.ndarray | None = None) -> Splits:
    """(fit, held-out) row pairs of a shuffled ``folds``-fold split, stratified by ``labels`` if given and with each of
    ``groups`` (if given) on one side; with fewer groups than ``folds``, as many folds as groups (at least two)."""
    rows = np.zeros(n_rows)
    if groups is not None:
        _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        parts = min(folds, int(codes.max()) + 1)
        if parts >= 2:
            if labels is None:
                return list(GroupKFold(n_splits=parts, shuffle=True, random_state=seed).split(rows, groups=codes))
            return list(StratifiedGroupKFold(n_splits=parts, shuffle=True, random_state=seed).split(rows, labels, codes))
        logger.warning("a single group: the inner cross-validation splits queries, not groups")
    if labels is None:
        return list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(rows))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(rows, labels))


def _eigen(Z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(λ, W, P) such that a ridge fit of centred ``Y`` on centred ``Z`` at any penalty α has the coefficients
    W · (P / (λ + α)): from the eigendecomposition of ZᵀZ (W = V, P = Vᵀ Zᵀ Y) or, with fewer rows than columns,
    of Z Zᵀ (W = Zᵀ U, P = Uᵀ Y), whichever is smaller."""
    Zc, Yc = Z - Z.mean(axis=0), Y - Y.mean(axis=0)
    single = Zc.astype(np.float32)  # single precision halves the cost; α ≥ ridge_min keeps it stable
    dual = len(Zc) < Zc.shape[1]
    eigenvalues, vectors = np.linalg.eigh(single @ single.T if dual else single.T @ single)
    vectors = vectors.astype(np.float64)
    eigenvalues = np.clip(eigenvalues.astype(np.float64), 0.0, None)
    if dual:
        return eigenvalues, Zc.T @ vectors, vectors.T @ Yc
    return eigenvalues, vectors, vectors.T @ (Zc.T @ Yc)


@dataclass
class CrossValidatedRidge:
    """Ridge regression of several targets on standardised inputs, the penalty of each target chosen from ``alphas``
    by the squared error on held-out folds; ``oof`` keeps each training row's held-out prediction at the chosen penalties.

    One eigendecomposition of the (smaller) Gram matrix per fold gives the predictions of every penalty at once.
    """

    alphas: np.ndarray
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None
    chosen: np.ndarray | None = None
    oof: np.ndarray | None = None

    def fit(self, X: np.ndarray, Y: np.ndarray, splits: Splits) -> Self:
        """Fit on rows ``X`` and targets ``Y`` (n, targets); ``splits`` are the (fit, held-out) folds of the penalty choice."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
        self.mean, scale = X.mean(axis=0), X.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        Z = (X - self.mean) / self.scale
        alphas = np.asarray(self.alphas, dtype=np.float64)
        held_out = np.zeros((len(alphas), *Y.shape))
        for fit_rows, held_rows in splits:
            held_out[:, held_rows, :] = self._path(Z[fit_rows], Y[fit_rows], Z[held_rows], alphas)
        error = ((held_out - Y[None]) ** 2).mean(axis=1)  # (alphas, targets)
        best = error.argmin(axis=0)
        self.chosen = alphas[best]
        self.oof = held_out[best, :, np.arange(Y.shape[1])].T
        eigenvalues, W, projected = _eigen(Z, Y)
        self.coef = W @ (projected / (eigenvalues[:, None] + self.chosen[None, :]))  # (features, targets)
        self.intercept = Y.mean(axis=0) - Z.mean(axis=0) @ self.coef
        return self

    @staticmethod
    def _path(Z_fit: np.ndarray, Y_fit: np.ndarray, Z_held: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Predictions for ``Z_held`` of ridge fits on (``Z_fit``, ``Y_fit``) at every penalty: (alphas, held, targets)."""
        eigenvalues, W, projected = _eigen(Z_fit, Y_fit)
        left = (Z_held - Z_fit.mean(axis=0)) @ W  # (held, rank)
        return np.stack([left @ (projected / (eigenvalues[:, None] + alpha)) for alpha in alphas]) + Y_fit.mean(axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The predicted targets of rows ``X``: (n, targets)."""
        if self.coef is None or self.mean is None or self.scale is None or self.intercept is None:
            raise ValueError("the ridge regression is not fitted")
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
