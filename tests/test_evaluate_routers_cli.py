"""`ecvl-router evaluate-routers` and `train --router ecvl-multi --recipe oof` on a small demo, with tiny encoders."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo

from tests.cli_support import invoke
from tests.serve_support import write_tiny_encoders

CLOUD, EDGE = DEMO_PAIRS[0]
SCENARIO_NAMES = ("quality", "efficiency", "speed")

pytestmark = pytest.mark.slow  # about 20 s: a 300-item demo, embedding, 2 folds × 3 routers, an oof training


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-routers")
    generate_demo(root / "data", n_items=300, seed=3)
    write_tiny_encoders(root / "encoders")
    return root


def common(workspace):
    return ("--encoders", workspace / "encoders" / "encoders.yaml", "--cache-dir", workspace / "cache")


@pytest.fixture(scope="module")
def comparison(workspace):
    out = workspace / "comparison"
    invoke("evaluate-routers", "--data", workspace / "data", "--edge", EDGE, "--cloud", CLOUD, "--out", out,
           "--epochs", 2, "--folds", 2, "--repeats", 1, "--inner-folds", 2, "--routers", "ecvl-multi:oof,gbdt,random",
           *common(workspace))
    return out


def test_evaluate_routers_writes_the_report(comparison):
    out = comparison
    for name in ("report.md", "summary.csv", "folds.csv", "rcs.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "rcs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    policies = {"all-large", "all-small", "oracle", "bayes", "ecvl-multi:oof", "gbdt", "random"}
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["scenario"]) == set(SCENARIO_NAMES)
    for scenario in SCENARIO_NAMES:
        block = summary[summary["scenario"] == scenario]
        assert sorted(block["policy"]) == sorted(policies), scenario
        assert (block["folds"] == 2).all()
        by = block.set_index("policy")
        best = by["best_trivial"].iloc[0]
        assert best == ("all-large" if by.loc["all-large", "rcs"] >= by.loc["all-small", "rcs"] else "all-small")
        assert by.loc[best, "gain"] == 0 and by.loc["oracle", "headroom_oracle"] == pytest.approx(1.0)
        assert by.loc["bayes", "headroom_bayes"] == pytest.approx(1.0)
        assert (by["rcs_low"] <= by["rcs"]).all() and (by["rcs"] <= by["rcs_high"]).all()
    folds = pd.read_csv(out / "folds.csv")
    assert len(folds) == 2 * len(policies) * len(SCENARIO_NAMES)
    assert set(folds["repeat"]) == {0} and set(folds["fold"]) == {0, 1}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "![RCS per policy](rcs.png)" in report
    for scenario in SCENARIO_NAMES:
        assert f"### {scenario}" in report
    for policy in policies:  # one RCS table per scenario, and two curve tables (mean score, APSP) for a ranking
        tables = 1 if policy in ("all-large", "all-small") else 3
        assert report.count(f"| {policy} |") == tables * len(SCENARIO_NAMES), policy


def test_evaluate_routers_draws_cost_quality_curves(comparison):
    out = comparison
    assert (out / "cost_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ranked = {"oracle", "bayes", "ecvl-multi:oof", "gbdt", "random"}
    folds = pd.read_csv(out / "folds.csv")
    assert "curve_points" not in folds
    assert folds.loc[folds["policy"].isin(ranked), "curve_share_score"].notna().all()
    assert folds.loc[~folds["policy"].isin(ranked), "curve_share_score"].isna().all()  # the trivial policies rank nothing
    shares = pd.read_csv(out / "curves.csv")
    assert set(shares["measure"]) == {"score", "apsp"} and set(shares["scenario"]) == set(SCENARIO_NAMES)
    for (scenario, measure), block in shares.groupby(["scenario", "measure"]):
        by = block.set_index("policy")
        assert set(by.index) == ranked | {"random-line"}, (scenario, measure)
        assert by.loc["oracle", "curve_share"] == pytest.approx(1.0) and by.loc["random-line", "curve_share"] == 0
        assert by["curve_share"].between(-1, 1).all()
        assert by.loc["ecvl-multi:oof", "best_router"] in {"ecvl-multi:oof", "gbdt", "random"}
        for key in ("edge_95", "edge_90"):
            assert by[key].between(0, 1).all()
            assert (by[key] <= by.loc["oracle", key] + 1e-9).all()  # no ranking keeps more queries on the edge than the oracle
        assert (by["edge_95"] <= by["edge_90"] + 1e-9).all()
    points = pd.read_csv(out / "curve_points.csv")
    for (scenario, measure), block in points.groupby(["scenario", "measure"]):
        curves = block.pivot(index="share", columns="policy", values="quality")
        assert len(curves) == 101 and set(curves.columns) == ranked | {"random-line"}
        assert curves.iloc[0].max() - curves.iloc[0].min() < 1e-9  # every curve starts at all-at-cloud
        assert curves.iloc[-1].max() - curves.iloc[-1].min() < 1e-9  # and ends at all-at-edge
        assert (curves.drop(columns="oracle").le(curves["oracle"] + 1e-9, axis=0)).all().all()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Cost–quality curves" in report and "![Cost–quality curves](cost_quality.png)" in report
    for scenario in SCENARIO_NAMES:
        assert f"### {scenario}: mean score" in report and f"### {scenario}: APSP at MES" in report


def test_evaluate_routers_rejects_an_unknown_router(workspace):
    result = CliRunner().invoke(app, ["evaluate-routers", "--data", str(workspace / "data"), "--edge", EDGE, "--cloud", CLOUD,
                                      "--out", str(workspace / "bad"), "--routers", "ecvl:cv"])
    assert result.exit_code == 1 and "unknown recipe 'cv'" in " ".join(result.output.split())  # independent of wrapping
    assert not (workspace / "bad").exists()


def test_train_multi_router_out_of_fold_then_evaluate_and_route(workspace):
    run = workspace / "multi-run"
    invoke("train", "--data", workspace / "data", "--edge", EDGE, "--cloud", CLOUD, "--out", run, "--router", "ecvl-multi",
           "--recipe", "oof", "--epochs", 2, "--scenario", "quality", "--scenario", "speed", *common(workspace))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["recipe"]["name"] == "oof"
    assert manifest["router"] == "ensemble"
    assert set(manifest["scenarios"]) == {"quality", "speed"}
    for entry in manifest["scenarios"].values():
        assert "fallback" in entry and entry["fallback"] in (None, "all-large", "all-small")
    report = json.loads(invoke("evaluate", run, "--json", "--cache-dir", workspace / "cache", "--figure",
                               workspace / "multi-curves.png").stdout)
    assert report["split"] == "test" and report["n"] == 60
    quality = report["scenarios"]["quality"]
    assert set(quality) == {"ecvl-multi:oof", "all-large", "all-small", "oracle", "bayes"}
    assert 0 <= quality["ecvl-multi:oof"]["apsp"] <= 1 and quality["oracle"]["accuracy"] == 1.0
    assert set(report["curves"]) == {"quality", "speed"}
    for measure in ("score", "apsp"):
        curves = report["curves"]["quality"][measure]
        assert set(curves) == {"ecvl-multi:oof", "oracle", "bayes", "random-line"}
        assert curves["oracle"]["curve_share"] == 1.0 and curves["random-line"]["curve_share"] == 0.0
        assert -1 <= curves["ecvl-multi:oof"]["curve_share"] <= 1
        assert 0 <= curves["ecvl-multi:oof"]["edge_95"] <= curves["oracle"]["edge_95"] <= 1
    assert (workspace / "multi-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    decision = json.loads(invoke("route", run, "--question", "How many circles are there?", "--scenario", "speed", "--json").stdout)
    assert decision["route"] in ("edge", "cloud") and 0 <= decision["p"] <= 1
    assert decision["model"] == (EDGE if decision["route"] == "edge" else CLOUD)
    assert decision["tau"] == manifest["scenarios"]["speed"]["tau"]
    at_eight = json.loads(invoke("route", run, "--question", "How many circles are there?", "--scenario", "speed", "--mes", 8,
                                 "--json").stdout)
    assert at_eight["mes"] == 8 and 0 <= at_eight["p"] <= 1
