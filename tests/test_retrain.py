"""Champion against challenger: `ecvl-router retrain` on a champion run and a judged capture dataset, and the verdict rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data.demo import generate_demo
from ecvl_router.data.rsd import PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.bundle import load_bundle
from ecvl_router.learning.champion import decide
from ecvl_router.learning.training_set import TrainingSet, concat_training_sets
from ecvl_router.routers import ScoreTargets
from tests.cli_support import invoke
from tests.serve_support import CLOUD, EDGE, write_tiny_encoders


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A linear champion trained on a 120-item demo set, and the cache its features live in."""
    root = tmp_path_factory.mktemp("champion")
    data = generate_demo(root / "data", n_items=120, seed=3).out_dir
    encoders = write_tiny_encoders(root / "encoders")
    invoke("train", "--data", data, "--edge", EDGE, "--cloud", CLOUD, "--out", root / "run", "--cache-dir", root / "cache",
           "--encoders", encoders, "--scenario", "quality", "--scenario", "speed")
    return root / "run", root / "cache"


def test_retrain_writes_a_report_a_verdict_and_a_servable_challenger(champion, tmp_path: Path) -> None:
    run, cache = champion
    capture = generate_demo(tmp_path / "capture", n_items=80, seed=11).out_dir
    out = tmp_path / "contest"
    result = invoke("retrain", run, "--capture", capture, "--out", out, "--folds", 2, "--repeats", 2, "--cache-dir", cache)
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] in ("promote", "keep") and verdict["reasons"]
    assert verdict["verdict"] in result.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert summary["scenario"].tolist() == ["quality", "speed"]
    assert (summary["diff_low"] <= summary["diff"]).all() and (summary["diff"] <= summary["diff_high"]).all()
    np.testing.assert_allclose(summary["diff"], summary["challenger_rcs"] - summary["champion_rcs"], atol=1e-12)
    folds = pd.read_csv(out / "folds.csv")
    assert len(folds) == 2 * 2 * 2 * 2  # repeats × folds × policies × scenarios
    assert (verdict["verdict"] == "promote") == bool((summary["diff_low"] >= -0.005).all())
    report = (out / "report.md").read_text()
    assert f"Verdict: {verdict['verdict']}" in report and (out / "contest.png").stat().st_size > 0
    challenger = load_bundle(out / "challenger")
    assert set(challenger.choices) == {"quality", "speed"}
    assert challenger.manifest["inputs"]["capture"] == str(capture.resolve())
    decision = json.loads(invoke("route", out / "challenger", "--question", "How many circles are there?", "--json").stdout)
    assert decision["route"] in ("edge", "cloud")


def test_retrain_refuses_a_capture_on_another_score_scale(champion, tmp_path: Path) -> None:
    run, cache = champion
    capture = generate_demo(tmp_path / "capture", n_items=40, seed=12).out_dir
    info = json.loads((capture / "dataset.json").read_text())
    info["score_max"] = 20
    (capture / "dataset.json").write_text(json.dumps(info))
    result = CliRunner().invoke(app, ["retrain", str(run), "--capture", str(capture), "--out", str(tmp_path / "out"),
                                      "--cache-dir", str(cache)])
    assert result.exit_code != 0
    assert "judge the capture on the run's scale" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def _summary(diff_low: float) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": "quality", "diff": diff_low + 0.01, "diff_low": diff_low, "diff_high": diff_low + 0.02}])


def test_the_verdict_needs_every_interval_above_minus_margin_and_every_guarantee() -> None:
    no_guarantees = pd.DataFrame(columns=["scenario", "violation_rate", "allowed", "pvalue", "holds"])
    assert decide(_summary(-0.004), no_guarantees, margin=0.005).promote
    kept = decide(_summary(-0.006), no_guarantees, margin=0.005)
    assert not kept.promote and "quality" in kept.reasons[0]
    failing = pd.DataFrame([{"scenario": "safe", "violation_rate": 0.3, "allowed": 0.1, "pvalue": 0.001, "holds": False}])
    broken = decide(_summary(0.01), failing, margin=0.005)
    assert not broken.promote and "guarantee fails" in broken.reasons[0]


def _set(ids: list[str], scores: np.ndarray, models: tuple[str, ...]) -> TrainingSet:
    n = len(ids)
    features = QueryFeatures(np.array(ids, dtype=object), np.ones((n, 2), np.float32), np.zeros((n, 3), np.float32),
                             np.zeros((n, 1), np.float32), np.zeros(n, bool))
    column = {model: scores[:, i] for i, model in enumerate(models)}
    pair = PairView("e", "c", np.array(ids, dtype=object), np.array(["s"] * n, dtype=object), column["e"], column["c"],
                    np.ones(n), np.ones(n) * 2, np.full(n, np.nan), np.full(n, np.nan), 1, 0)
    return TrainingSet(features, ScoreTargets(scores, models, "e", "c", 6.0), np.zeros(n), pair, np.array(["a"] * n, dtype=object))


def test_joining_training_sets_aligns_score_columns_on_the_first() -> None:
    base = _set(["a", "b"], np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), ("e", "x", "c"))
    captured = _set(["z"], np.array([[7.0, 9.0]]), ("c", "e"))
    joined = concat_training_sets(base, captured)
    assert joined.features.item_ids.tolist() == ["a", "b", "z"] and len(joined) == 3
    np.testing.assert_array_equal(joined.targets.scores[2], [9.0, np.nan, 7.0])
    assert joined.pair.missing_edge == 2 and joined.pair.score_edge.tolist() == [1.0, 4.0, 9.0]
    with pytest.raises(ValueError, match="both training sets have groups"):
        concat_training_sets(base, TrainingSet(captured.features, captured.targets, captured.labels, captured.pair,
                                               captured.strata, np.array(["g"])))


def test_a_trained_bundle_records_the_p_histogram_of_its_test_part(champion) -> None:
    run, _ = champion
    manifest = json.loads((run / "manifest.json").read_text())
    split = json.loads((run / "split.json").read_text())
    for name in ("quality", "speed"):
        reference = manifest["p_reference"][name]
        assert reference["part"] == "test" and reference["n"] == len(split["test"]) == sum(reference["counts"])
        assert len(reference["bins"]) == len(reference["counts"]) + 1
