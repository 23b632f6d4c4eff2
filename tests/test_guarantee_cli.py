"""A guaranteed scenario through the CLI: train → evaluate → route say the promise; check-guarantee writes its report."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.learning.risk_control import GUARANTEE_GRID

from tests.cli_support import invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarantee")
    generate_demo(root / "data", n_items=120, seed=3)
    (root / "careful.yaml").write_text("- {name: careful, mes: 6, max_quality_drop: 0.05, confidence: 0.9}\n")
    return root


def test_train_evaluate_route_carry_the_promise(workspace):
    cloud, edge = DEMO_PAIRS[0]
    run, cache = workspace / "run", workspace / "cache"
    trained = invoke("train", "--data", workspace / "data", "--edge", edge, "--cloud", cloud, "--out", run, "--router", "gbdt",
                     "--cache-dir", cache, "--scenario", workspace / "careful.yaml", "--scenario", "quality")
    entry = json.loads((run / "manifest.json").read_text())["scenarios"]["careful"]
    assert entry["max_quality_drop"] == 0.05 and "at most 0.05 with confidence 0.9" in entry["promise"]
    assert len(entry["pvalue_by_tau"]) == len(entry["grid"]) == len(GUARANTEE_GRID)
    assert "careful: " in trained.output and ("certifies" in trained.output or "every query goes to the cloud" in trained.output)
    report = json.loads(invoke("evaluate", run, "--json", "--cache-dir", cache).stdout)
    assert report["promises"] == {"careful": entry["promise"]}
    assert "quality_drop" in report["scenarios"]["careful"]["gbdt"] and "quality_drop" not in report["scenarios"]["quality"]["gbdt"]
    decision = json.loads(invoke("route", run, "--question", "How many circles are there?", "--scenario", "careful", "--json").stdout)
    assert decision["promise"] == entry["promise"] and decision["tau"] == entry["tau"]


def test_oof_recipe_keeps_guaranteed_scenarios_apart(workspace):
    cloud, edge = DEMO_PAIRS[0]
    result = CliRunner().invoke(app, ["train", "--data", str(workspace / "data"), "--edge", edge, "--cloud", cloud, "--out",
                                      str(workspace / "mixed"), "--recipe", "oof", "--scenario", str(workspace / "careful.yaml"),
                                      "--scenario", "quality"])
    assert result.exit_code == 1 and "in a run of their own" in " ".join(result.output.split())


@pytest.mark.parametrize("router", ["gbdt", "ecvl-multi"])  # ecvl-multi learns from every model's scores
def test_check_guarantee_writes_its_report(workspace, router):
    cloud, edge = DEMO_PAIRS[0]
    out = workspace / f"check-{router}"
    invoke("check-guarantee", "--data", workspace / "data", "--edge", edge, "--cloud", cloud, "--mes", 6, "--out", out,
           "--max-quality-drop", 0.1, "--confidence", 0.9, "--repetitions", 5, "--folds", 2, "--cache-dir", workspace / "cache",
           "--router", router)
    summary = pd.read_csv(out / "guarantee.csv")
    assert set(summary["policy"]) == {"guaranteed", "plug-in", "matched", "rcs"} and (summary["repetitions"] == 5).all()
    assert len(pd.read_csv(out / "repetitions.csv")) == 4 * 5 and len(pd.read_csv(out / "probabilities.csv")) == 120
    assert (out / "guarantee.png").stat().st_size > 0 and "confidence 0.9" in (out / "guarantee.md").read_text()


def test_train_without_a_recipe_takes_split_where_oof_cannot_serve(workspace):
    from ecvl_router.cli.train import default_recipe
    from ecvl_router.learning.recipes import DEFAULT_RECIPE
    from ecvl_router.scenarios import SCENARIOS, load_scenarios

    (careful,) = load_scenarios(workspace / "careful.yaml")
    assert default_recipe([SCENARIOS["quality"]], None) == DEFAULT_RECIPE
    assert default_recipe([careful], None) == DEFAULT_RECIPE
    assert default_recipe([careful, SCENARIOS["quality"]], None) == "split"
    assert default_recipe([SCENARIOS["quality"]], 0.3) == "split"
