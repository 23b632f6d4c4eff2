"""Drift of p: histograms over the fixed bins, the population stability index, its reading, and the bundle's reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecvl_router.learning.drift import P_BINS, drift_level, p_histogram, population_stability_index


def test_p_histogram_uses_twenty_bins_and_keeps_the_ends() -> None:
    counts = p_histogram([0.0, 0.049, 0.05, 0.5, 1.0, 1.2, -0.1])
    assert len(counts) == len(P_BINS) - 1 == 20
    assert counts[0] == 3 and counts[1] == 1 and counts[10] == 1 and counts[-1] == 2 and counts.sum() == 7


def test_population_stability_index_by_hand() -> None:
    assert population_stability_index([10, 30, 60], [1, 3, 6]) == pytest.approx(0.0)
    expected = (0.5 - 0.2) * math.log(0.5 / 0.2) + (0.5 - 0.8) * math.log(0.5 / 0.8)
    assert population_stability_index([20, 80], [50, 50]) == pytest.approx(expected)
    assert population_stability_index([1, 0], [0, 1]) == pytest.approx(2 * (1 - 1e-4) * math.log((1 - 0) / 1e-4), rel=1e-3)
    assert math.isnan(population_stability_index([0, 0], [1, 2]))
    with pytest.raises(ValueError, match="different bins"):
        population_stability_index([1, 2], [1, 2, 3])


def test_drift_levels_follow_the_conventional_thresholds() -> None:
    assert [drift_level(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, float("nan"))] == \
        ["stable", "stable", "watch", "watch", "retrain", "unknown"]


def test_shifted_p_reads_as_retrain_and_resampled_p_as_stable() -> None:
    rng = np.random.default_rng(0)
    reference = p_histogram(rng.beta(2, 5, 4000))
    assert drift_level(population_stability_index(reference, p_histogram(rng.beta(2, 5, 4000)))) == "stable"
    assert drift_level(population_stability_index(reference, p_histogram(rng.beta(5, 2, 4000)))) == "retrain"
