"""Drift of p: histograms over the fixed bins, the population stability index, its reading, and the bundle's reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ecvl_router.learning.drift import P_BINS, drift_level, p_histogram, population_stability_index
from tests.test_retrain import champion  # noqa: F401


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


def _write_captures(folder, manifest: dict, name: str, p: np.ndarray, edge_share: float) -> None:
    from ecvl_router.capture_store import CaptureRecord, CaptureStore

    edges = int(round(edge_share * len(p)))
    records = [CaptureRecord(f"r{i}", name, "edge" if i < edges else "cloud", float(value), manifest["scenarios"][name]["tau"],
                             None, f"How many circles are there in picture {i}?", None, False) for i, value in enumerate(p)]
    CaptureStore(folder).write(records)


def test_drift_report_reads_a_capture_and_says_whether_retraining_is_due(champion, tmp_path) -> None:
    from tests.cli_support import invoke

    run, _ = champion
    manifest = json.loads((run / "manifest.json").read_text())
    reference = manifest["p_reference"]["quality"]
    centres = (np.asarray(reference["bins"][:-1]) + np.asarray(reference["bins"][1:])) / 2
    like_reference = np.repeat(centres, np.asarray(reference["counts"]) * 10)  # the reference's shares exactly
    validation_share = manifest["scenarios"]["quality"]["val_metrics"]["ca"]

    _write_captures(tmp_path / "steady", manifest, "quality", like_reference, validation_share)
    invoke("drift", tmp_path / "steady", "--bundle", run, "--out", tmp_path / "steady-report")
    steady = json.loads((tmp_path / "steady-report" / "drift.json").read_text())
    quality = next(row for row in steady["scenarios"] if row["scenario"] == "quality")
    assert quality["psi"] == pytest.approx(0.0, abs=1e-9) and quality["level"] == "stable" and not steady["retraining_due"]
    assert next(row for row in steady["scenarios"] if row["scenario"] == "speed")["level"] == "too few"

    shifted = np.full(len(like_reference), 0.999) if centres[np.argmax(reference["counts"])] < 0.5 else np.full(len(like_reference), 0.001)
    _write_captures(tmp_path / "moved", manifest, "quality", shifted, validation_share)
    result = invoke("drift", tmp_path / "moved", "--bundle", run, "--out", tmp_path / "moved-report", "--last", 100)
    moved = json.loads((tmp_path / "moved-report" / "drift.json").read_text())
    assert moved["retraining_due"] and "is due" in result.stdout
    assert next(row for row in moved["scenarios"] if row["scenario"] == "quality")["queries"] == 100
    report = (tmp_path / "moved-report" / "drift.md").read_text()
    assert "Retraining is due" in report and "words per question" in report
    assert (tmp_path / "moved-report" / "drift.png").stat().st_size > 0


def test_drift_refuses_a_folder_that_is_no_capture(champion, tmp_path) -> None:
    from typer.testing import CliRunner

    from ecvl_router.cli import app

    run, _ = champion
    result = CliRunner().invoke(app, ["drift", str(tmp_path), "--bundle", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "not a capture folder" in " ".join(result.output.split())
