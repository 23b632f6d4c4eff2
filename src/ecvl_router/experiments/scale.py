"""Carrying the paper's score-scale settings (MES 6, MES 1–9, win-soft margins 1 and 2) to any dataset's scale.

The paper scores on 1–10. A value ``v`` on that scale maps linearly to
``score_min + (v - 1) / 9 * (score_max - score_min)``, so a 1–10 dataset keeps the paper's numbers exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

PAPER_SCALE = (1.0, 10.0)
MAX_INTEGER_LEVELS = 20
"""Scales with at most this many integer score levels sweep the MES over each level, as the paper does."""


def _span(score_min: float, score_max: float) -> float:
    if not score_max > score_min:
        raise ValueError(f"score scale [{score_min:g}, {score_max:g}] is empty")
    return score_max - score_min


def from_paper_scale(value: float, score_min: float, score_max: float) -> float:
    """A point of the paper's 1–10 scale on ``[score_min, score_max]``."""
    low, high = PAPER_SCALE
    return float(round(score_min + (value - low) / (high - low) * _span(score_min, score_max), 6))


def paper_unit(score_min: float, score_max: float) -> float:
    """One point of the paper's 1–10 scale, in the dataset's units (the win-soft margin k = 1)."""
    low, high = PAPER_SCALE
    return float(round(_span(score_min, score_max) / (high - low), 6))


def mes_grid(scores: ArrayLike, score_min: float, score_max: float) -> tuple[float, ...]:
    """The MES values of the MES sweep (Figures 11 and 12).

    Integer scores with at most ``MAX_INTEGER_LEVELS`` levels: every level but the top one (1, 2, …, 9 on
    the paper's 1–10 scale). Otherwise the nine interior points of ten equal steps (0.1, …, 0.9 on 0–1).
    """
    span = _span(score_min, score_max)
    values = np.asarray(scores, dtype=np.float64)
    integer = len(values) > 0 and np.all(values == np.round(values)) and float(score_min).is_integer()
    if integer and span <= MAX_INTEGER_LEVELS and float(score_max).is_integer():
        return tuple(float(v) for v in np.arange(score_min, score_max))
    return tuple(float(round(score_min + span * i / 10, 6)) for i in range(1, 10))
