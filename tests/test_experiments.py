"""Routing tasks, evaluation and the main experiment on the demo data with synthetic features (no encoders)."""

import numpy as np
import pytest

from ecvl_router import SCENARIOS
from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.learning.evaluation import evaluate_decisions, reference_decisions
from ecvl_router.experiments.main_table import ModelPair, run_pair
from ecvl_router.features.features import QueryFeatures
from ecvl_router.report.main_report import headline, write_main_report
from ecvl_router.learning.routing_task import build_task

SCENARIO_LIST = list(SCENARIOS.values())


@pytest.fixture(scope="module")
def demo_rsd(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(root, n_items=240, seed=1)
    return load_rsd(root)


def synthetic_features(rsd, seed=0):
    """Features that carry some signal: the item's mean score across models leaks into the text vector."""
    rng = np.random.default_rng(seed)
    n = len(rsd.items)
    mean_score = rsd.responses.groupby("item_id")["score"].mean().reindex(rsd.items["item_id"]).to_numpy()
    text = rng.normal(size=(n, 8)).astype(np.float32)
    text[:, 0] = (mean_score - mean_score.mean()) / mean_score.std()
    return QueryFeatures(
        item_ids=rsd.items["item_id"].to_numpy(dtype=object),
        text=text,
        image=rng.normal(size=(n, 6)).astype(np.float32),
        stats=rng.normal(size=(n, 4)).astype(np.float32),
        has_image=rsd.items["image"].notna().to_numpy(),
    )


def test_task_labels_and_split(demo_rsd):
    cloud, edge = DEMO_PAIRS[0]
    task = build_task(demo_rsd, edge, cloud, mes=6, seed=3)
    assert len(task.pair) == 240 and task.split.sizes() == (144, 48, 48)
    assert set(np.unique(task.labels)) <= {0, 1}
    again = build_task(demo_rsd, edge, cloud, mes=6, seed=3)
    assert np.array_equal(task.split.test, again.split.test)
    with pytest.raises(ValueError, match="outside the dataset's score scale"):
        build_task(demo_rsd, edge, cloud, mes=11)


def test_oracle_is_an_upper_bound_on_apsp(demo_rsd):
    cloud, edge = DEMO_PAIRS[0]
    task = build_task(demo_rsd, edge, cloud, mes=6)
    view, labels = task.view("test")
    metrics = {p: evaluate_decisions(reference_decisions(p, labels), view, labels, SCENARIOS["quality"]) for p in ("oracle", "all-large", "all-small")}
    assert metrics["oracle"]["apsp"] >= max(metrics["all-large"]["apsp"], metrics["all-small"]["apsp"])
    assert metrics["oracle"]["accuracy"] == 1.0
    assert metrics["all-large"]["ca"] == 0.0 and metrics["all-small"]["ca"] == 1.0


def test_main_table_rows_cache_and_report(demo_rsd, tmp_path):
    features = synthetic_features(demo_rsd)
    pair = ModelPair(*DEMO_PAIRS[0])
    kwargs = dict(routers=("ecvl", "gbdt", "random", "all-large"), cache_dir=tmp_path / "cache", feature_identity={"synthetic": 1},
                  router_params={"ecvl": {"epochs": 2}})
    result = run_pair(demo_rsd, pair, features, SCENARIO_LIST, **kwargs)
    assert result.trained_from_cache == 0
    assert len(result.rows) == (4 + 1) * 3  # routers + oracle, per scenario
    for row in result.rows:
        scenario = SCENARIOS[row["scenario"]]
        assert row["rcs"] == pytest.approx(scenario.rcs(row["apsp"], row["ca"], row["ail"]))
    again = run_pair(demo_rsd, pair, features, SCENARIO_LIST, **kwargs)
    assert again.trained_from_cache == 4
    assert [r["rcs"] for r in again.rows] == [r["rcs"] for r in result.rows]
    report = write_main_report([result], SCENARIO_LIST, tmp_path / "report")
    text = report.read_text()
    assert "Table 1" in text and "| oracle |" in text
    oracle_row = next(line for line in text.splitlines() if "| oracle |" in line)
    assert "nan" not in oracle_row and "–" in oracle_row  # the oracle has no threshold
    png = next((tmp_path / "report").glob("tau_sensitivity_*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    (line,) = headline([result], SCENARIOS["quality"])
    assert line["router"] in ("ecvl", "gbdt") and 0 <= line["edge_share"] <= 1
