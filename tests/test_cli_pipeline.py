"""End to end through the CLI with the real default encoders: demo data → train → evaluate → route; demo caching."""

import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.learning.recipes import DEFAULT_RECIPE, DEFAULT_ROUTER

from tests.cli_support import invoke
from tests.strict_json import strict_loads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    generate_demo(root / "data", n_items=120, seed=2)
    return root


def test_train_evaluate_route(workspace):
    cloud, edge = DEMO_PAIRS[0]
    run = workspace / "run"
    trained = invoke("train", "--data", workspace / "data", "--edge", edge, "--cloud", cloud, "--out", run,
                     "--epochs", 2, "--cache-dir", workspace / "cache", "--scenario", "quality", "--scenario", "speed")
    assert f"{DEFAULT_ROUTER} is not trained in epochs; --epochs is ignored" in " ".join(trained.stdout.split())
    manifest = strict_loads((run / "manifest.json").read_text())
    assert set(manifest["scenarios"]) == {"quality", "speed"}
    assert manifest["settings"]["task"]["edge"] == edge
    report = strict_loads(invoke("evaluate", run, "--json", "--cache-dir", workspace / "cache").stdout)
    assert report["split"] == "test" and report["n"] == 24
    quality = report["scenarios"]["quality"]
    default = f"{DEFAULT_ROUTER}:{DEFAULT_RECIPE}"
    assert set(quality) == {default, "all-large", "all-small", "oracle", "bayes"}  # bayes: demo data only
    assert quality["oracle"]["accuracy"] == 1.0 and 0 <= quality["bayes"]["tau"] <= 1
    table = invoke("evaluate", run, "--cache-dir", workspace / "cache").stdout
    assert "time saved (s)" in table and "tokens saved share" in table and "against all-at-large" in table
    assert "quality scenario — cost–quality curves" in " ".join(table.split())
    assert report["curves"]["quality"]["score"]["oracle"]["curve_share"] == 1.0
    assert quality[default]["rcs"] == pytest.approx(1.2 * quality[default]["apsp"] + 0.1 * quality[default]["ca"] - 0.001 * quality[default]["ail"])
    image = next((workspace / "data" / "images").iterdir())
    for extra in (("--image", image), ()):
        decision = strict_loads(invoke("route", run, "--question", "How many circles are there?", "--scenario", "speed", "--json", *extra).stdout)
        assert decision["route"] in ("edge", "cloud") and 0 <= decision["p"] <= 1
        assert decision["model"] == (edge if decision["route"] == "edge" else cloud)
        assert decision["tau"] == manifest["scenarios"]["speed"]["tau"]


def test_train_rejects_bad_arguments(workspace):
    cloud, edge = DEMO_PAIRS[0]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(workspace / "data"), "--edge", "nope", "--cloud", cloud, "--out", str(workspace / "x")])
    assert result.exit_code == 1 and "model 'nope' not in dataset" in result.output
    result = runner.invoke(app, ["train", "--data", str(workspace / "data"), "--edge", edge, "--cloud", cloud, "--out", str(workspace / "x"), "--scenario", "fast"])
    assert result.exit_code == 1 and "unknown scenario 'fast'" in result.output
    base = ["train", "--data", str(workspace / "data"), "--edge", edge, "--cloud", cloud, "--out", str(workspace / "x")]
    result = runner.invoke(app, [*base, "--recipe", "bagging"])
    assert result.exit_code == 1 and "unknown recipe 'bagging'" in result.output
    result = runner.invoke(app, [*base, "--recipe", "oof", "--edge-share", "0.5"])
    assert result.exit_code == 1 and "does not apply to --recipe oof" in " ".join(result.output.split())
    assert not (workspace / "x").exists()


def test_demo_runs_end_to_end_and_reuses_its_caches(tmp_path):
    args = ("demo", "--out", tmp_path, "--items", 150, "--epochs", 1, "--routers", "ecvl,gbdt,all-large,all-small")
    first = invoke(*args)
    assert "0 trained routers reused" in first.output
    assert (tmp_path / "report" / "table1.md").is_file() and len(list((tmp_path / "report").glob("*.png"))) == 3
    second = invoke(*args)
    assert "reusing the demo benchmark" in second.output and "12 trained routers reused" in second.output
