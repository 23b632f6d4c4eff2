"""`ecvl-router predict` on folders with items alone: the bundle's decisions, CSV and Parquet, broken items reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data.items import read_items
from ecvl_router.features.extractor import (
    ExtractorSettings,
    FeatureExtractor,
    extract_for_items,
)
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.bundle import load_bundle
from ecvl_router.learning.prediction import (
    item_features,
    manifest_path,
    prediction_table,
)
from ecvl_router.learning.thresholds import ThresholdChoice
from ecvl_router.learning.training import ScenarioChoice, TrainedRouter
from ecvl_router.routers import create_router
from ecvl_router.scenarios import Scenario
from tests.cli_support import invoke
from tests.serve_support import CLOUD, EDGE, demo_data, write_tiny_encoders  # noqa: F401
from tests.strict_json import strict_loads

SCENARIOS = [
    {"name": "quality", "alpha": 1.2, "beta": 0.1, "gamma": 0.001},
    {"name": "speed", "alpha": 1.0, "beta": 0.1, "gamma": 0.0015},
]
GUARANTEED = {"name": "careful", "mes": 6, "max_quality_drop": 0.1, "confidence": 0.8}
N_ITEMS = 20


@pytest.fixture(scope="module")
def workspace(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two bundles trained with tiny encoders: linear (split recipe, with a guaranteed scenario) and ecvl-multi:oof."""
    root = tmp_path_factory.mktemp("predict")
    encoders = write_tiny_encoders(root / "encoders")
    for name, scenarios, extra in (("linear", [*SCENARIOS, GUARANTEED], ("--router", "linear", "--recipe", "split")), ("multi", SCENARIOS, ("--router", "ecvl-multi", "--recipe", "oof"))):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(scenarios))
        invoke("train", "--data", demo_data, "--edge", EDGE, "--cloud", CLOUD, "--out", root / name, "--epochs", 2,
               "--cache-dir", root / "cache", "--encoders", encoders, "--scenario", root / f"{name}.yaml", *extra)
    return root


@pytest.fixture(scope="module")
def log(demo_data: Path, workspace: Path) -> Path:
    """The first N_ITEMS demo items and their images alone: no dataset.json, no responses."""
    root = workspace / "log"
    records = [json.loads(line) for line in (demo_data / "items.jsonl").read_text().splitlines()[:N_ITEMS]]
    for record in records:
        if record["image"]:
            (root / record["image"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_data / record["image"], root / record["image"])
    (root / "items.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return root


def _predict(workspace: Path, run: str, data: Path, out: Path, *extra: object) -> pd.DataFrame:
    invoke("predict", workspace / run, "--data", data, "--out", out, "--cache-dir", workspace / "cache", *extra)
    if out.suffix == ".parquet":
        return pd.read_parquet(out)
    return pd.read_csv(out, keep_default_na=False, na_values=[""])


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table's cells as plain Python objects, every missing cell None (CSV and Parquet read back alike)."""
    return table.astype(object).where(table.notna(), None)


def _features(workspace: Path, run: str, data: Path) -> tuple[TrainedRouter, QueryFeatures]:
    """The bundle and the features of the readable items of ``data``, through the run's encoders and cache."""
    trained = load_bundle(workspace / run)
    extractor = FeatureExtractor.from_settings(ExtractorSettings(**trained.manifest["settings"]["extractor"]))
    lines = read_items(data).readable
    features = extract_for_items([line.item_id for line in lines], [line.question for line in lines],
                                 [line.image_path for line in lines], extractor, workspace / "cache")
    return trained, features


def test_predict_writes_the_bundles_p_and_decisions_for_items_without_responses(workspace, log):
    table = _predict(workspace, "linear", log, workspace / "linear.csv")
    trained, features = _features(workspace, "linear", log)
    assert list(table.columns) == ["item_id", "p", "route_quality", "route_speed", "route_careful", "error"]
    assert table["item_id"].tolist() == features.item_ids.tolist() and table["error"].isna().all()
    for name in trained.scenario_names:
        assert np.array_equal(table["p"].to_numpy(), trained.predict_proba(features, name))
        to_edge, _, _ = trained.decide(features, name)
        assert table[f"route_{name}"].tolist() == np.where(to_edge, "edge", "cloud").tolist()
    manifest = strict_loads(manifest_path(workspace / "linear.csv").read_text())
    assert manifest["producer"] == "ecvl-router predict" and manifest["counts"] == {"items": N_ITEMS, "scored": N_ITEMS, "failed": 0}
    careful = manifest["settings"]["scenarios"]["careful"]
    assert careful["tau"] == trained.choice("careful").tau and "at most 0.1 with confidence 0.8" in careful["promise"]


def test_parquet_holds_the_same_table_as_csv(workspace, log):
    csv = _predict(workspace, "linear", log, workspace / "same.csv")
    parquet = _predict(workspace, "linear", log, workspace / "same.parquet")
    assert (workspace / "same.parquet").read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(_cells(parquet), _cells(csv))


def test_route_decides_each_item_as_predict_does(workspace, log):
    table = _predict(workspace, "linear", log, workspace / "route.csv").set_index("item_id")
    tau = load_bundle(workspace / "linear").choice("quality").tau
    for line in read_items(log).readable[:3]:
        extra = ("--image", line.image_path) if line.image_path else ()
        decision = strict_loads(invoke("route", workspace / "linear", "--question", line.question, "--scenario", "quality", "--json", *extra).stdout)
        row = table.loc[line.item_id]
        assert decision["p"] == pytest.approx(row["p"], abs=1e-5)  # live features, the same encoders
        if abs(row["p"] - tau) > 1e-5:
            assert decision["route"] == row["route_quality"]


def test_broken_items_are_named_in_the_error_column_and_every_other_item_is_scored(workspace, log, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(log, broken)
    (broken / "images" / "corrupt.png").write_bytes(b"this is no image")
    first = json.loads((log / "items.jsonl").read_text().splitlines()[0])
    appended = ["{no json", json.dumps({"item_id": "no-question", "image": None}),
                json.dumps({"item_id": "gone", "question": "How many?", "image": "images/gone.png"}),
                json.dumps({"item_id": "corrupt", "question": "How many?", "image": "images/corrupt.png"}), json.dumps(first)]
    with open(broken / "items.jsonl", "a") as handle:
        handle.writelines(line + "\n" for line in appended)
    result = CliRunner().invoke(app, ["predict", str(workspace / "linear"), "--data", str(broken), "--out", str(tmp_path / "p.csv"),
                                      "--cache-dir", str(workspace / "cache")])
    assert result.exit_code == 0, result.output
    assert f"5 of {N_ITEMS + 5} items" in " ".join(result.output.split())
    table = pd.read_csv(tmp_path / "p.csv")
    errors = table["error"].tolist()[N_ITEMS:]
    assert errors[0].startswith(f"items.jsonl:{N_ITEMS + 1}: malformed JSON")
    assert errors[1] == f"items.jsonl:{N_ITEMS + 2}: field 'question': missing required field"
    assert errors[2] == f"items.jsonl:{N_ITEMS + 3}: field 'image': image file 'images/gone.png' not found"
    assert errors[3].startswith(f"items.jsonl:{N_ITEMS + 4}: field 'image': 'images/corrupt.png': cannot decode the image")
    assert errors[4].startswith(f"items.jsonl:{N_ITEMS + 5}: field 'item_id': duplicate item_id")
    assert table.loc[N_ITEMS:, ["p", "route_quality"]].isna().all().all()
    clean = _predict(workspace, "linear", log, tmp_path / "clean.csv")
    pd.testing.assert_frame_equal(_cells(table.iloc[:N_ITEMS]), _cells(clean))
    assert strict_loads(manifest_path(tmp_path / "p.csv").read_text())["counts"]["failed"] == 5


def test_nothing_scorable_is_an_error_and_writes_nothing(workspace, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "items.jsonl").write_text('{"item_id": "x"}\n[1]\n')
    result = CliRunner().invoke(app, ["predict", str(workspace / "linear"), "--data", str(tmp_path / "bad"), "--out", str(tmp_path / "p.csv"),
                                      "--cache-dir", str(workspace / "cache")])
    assert result.exit_code == 1 and "no item of" in result.output and "could not be scored" in result.output
    assert not (tmp_path / "p.csv").exists() and not manifest_path(tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    ("data", "out", "extra", "message"),
    [
        (None, "p.txt", (), "the output must end in .csv or .parquet"),
        (None, "exists.csv", (), "exists; use --force to replace it"),
        (None, "p.csv", ("--mes", "8"), "decides for its trained pair and MES only"),
        ("missing", "p.csv", (), "dataset folder not found"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(workspace, log, tmp_path, data, out, extra, message):
    (tmp_path / "exists.csv").write_text("kept\n")
    result = CliRunner().invoke(app, ["predict", str(workspace / "linear"), "--data", str(tmp_path / data if data else log),
                                      "--out", str(tmp_path / out), "--cache-dir", str(workspace / "cache"), *extra])
    assert result.exit_code == 1 and message in " ".join(result.output.split())
    assert (tmp_path / "exists.csv").read_text() == "kept\n" and not (tmp_path / "p.csv").exists()


def test_an_ecvl_multi_bundle_serves_another_pair_and_mes_and_its_fallbacks(workspace, log):
    models = ("sim-vlm-2b", "sim-vlm-27b")
    table = _predict(workspace, "multi", log, workspace / "multi.parquet", "--mes", 8, "--edge", models[0], "--cloud", models[1])
    trained, features = _features(workspace, "multi", log)
    for name in trained.scenario_names:
        to_edge, p, _ = trained.decide(features, name, mes=8, edge=models[0], cloud=models[1])
        assert np.array_equal(table["p"].to_numpy(), p)
        assert table[f"route_{name}"].tolist() == np.where(to_edge, "edge", "cloud").tolist()
    settings = strict_loads(manifest_path(workspace / "multi.parquet").read_text())["settings"]
    assert (settings["edge"], settings["cloud"], settings["mes"]) == (*models, 8)
    for name, entry in settings["scenarios"].items():
        assert entry["fallback"] == trained.choice(name).fallback and entry["tau"] == trained.choice(name).tau_at(8)


def test_scenarios_kept_at_different_states_get_a_p_column_each(tmp_path):
    """A neural router's scenarios may keep different best epochs: each scenario's p is its own state's."""
    rng = np.random.default_rng(0)
    n = 40
    features = QueryFeatures(np.array([f"q{i}" for i in range(n)]), rng.normal(size=(n, 4)).astype(np.float32),
                             np.zeros((n, 3), np.float32), rng.normal(size=(n, 2)).astype(np.float32), np.zeros(n, bool))
    router = create_router("linear", random_state=0)
    states = {epoch: router.fit(features, (features.text[:, epoch] > 0).astype(int)).get_state() for epoch in (0, 1)}
    choices = {name: ScenarioChoice(Scenario(name=name, alpha=1.0, beta=0.1, gamma=0.0), epoch, ThresholdChoice(0.5, 0.0, {}))
               for name, epoch in (("a", 0), ("b", 1))}
    trained = TrainedRouter(router, choices, states, {"a": [], "b": []})
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"item_id": f"q{i}", "question": "?"}) + "\n" for i in range(n)))
    table = prediction_table(trained, read_items(tmp_path), features, {})
    assert list(table.columns) == ["item_id", "p_a", "p_b", "route_a", "route_b", "error"]
    for name in ("a", "b"):
        assert np.array_equal(table[f"p_{name}"].to_numpy(), trained.predict_proba(features, name))
    assert not np.array_equal(table["p_a"].to_numpy(), table["p_b"].to_numpy())


def test_item_features_leave_out_undecodable_images_only(workspace, log, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(log, folder)
    victim = next(line for line in read_items(folder).readable if line.image_path)
    victim.image_path.write_bytes(b"\x89PNG truncated")
    trained = load_bundle(workspace / "linear")
    extractor = FeatureExtractor.from_settings(ExtractorSettings(**trained.manifest["settings"]["extractor"]))
    items = read_items(folder)
    features, failed = item_features(items, extractor, cache_dir=tmp_path / "cache")
    assert list(failed) == [victim.line] and failed[victim.line].field == "image"
    assert victim.item_id not in features.item_ids and len(features) == N_ITEMS - 1


def test_item_features_carry_the_items_sources_where_they_name_them(workspace, log, tmp_path):
    trained = load_bundle(workspace / "linear")
    extractor = FeatureExtractor.from_settings(ExtractorSettings(**trained.manifest["settings"]["extractor"]))
    records = [json.loads(line) for line in (log / "items.jsonl").read_text().splitlines()]
    features, _ = item_features(read_items(log), extractor, cache_dir=workspace / "cache")
    assert list(features.sources) == [record["source"] for record in records] and all(features.sources)
    folder = tmp_path / "no-sources"
    shutil.copytree(log, folder)
    (folder / "items.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "source"}) + "\n" for r in records))
    assert item_features(read_items(folder), extractor, cache_dir=workspace / "cache")[0].sources is None
