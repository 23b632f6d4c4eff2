"""Router bundles: save -> load gives the same decisions, and the manifest says what was trained how."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ecvl_router.learning.bundle import BundleError, load_bundle, save_bundle
from ecvl_router.routers import ROUTER_NAMES, create_router
from ecvl_router.scenarios import SCENARIOS, Scenario
from ecvl_router.learning.training import train_router
from tests.routing_synthetic import SMALL_PARAMS, synthetic_problem

SCENARIO_LIST = [*SCENARIOS.values(), Scenario(name="edge-lover", alpha=0.2, beta=1.0, gamma=0.0)]
EXTRA = {
    "inputs": {"data": "/data/rsd", "data_name": "synthetic"},
    "settings": {"task": {"edge": "edge-model", "cloud": "cloud-model", "rule": "mes", "mes": 6.0}},
    "label_rule": "MES rule (MES 6)",
    "features": {"text": "text-encoder", "image": "image-encoder"},
}


@pytest.fixture(scope="module")
def data():
    X, y, _ = synthetic_problem(300, seed=21)
    X_val, _, pair_val = synthetic_problem(150, seed=22)
    X_test, _, _ = synthetic_problem(150, seed=23)
    return X, y, X_val, pair_val, X_test


def _train(name, data):
    X, y, X_val, pair_val, _ = data
    params = {**SMALL_PARAMS[name], "epochs": 4} if "epochs" in SMALL_PARAMS[name] else SMALL_PARAMS[name]
    return train_router(create_router(name, **params, random_state=5), X, y, X_val, pair_val, SCENARIO_LIST)


@pytest.mark.parametrize("name", ROUTER_NAMES)
def test_save_then_load_gives_identical_decisions(name, data, tmp_path: Path):
    trained = _train(name, data)
    X_test = data[4]
    save_bundle(trained, tmp_path / "bundle", extra_manifest=EXTRA)
    loaded = load_bundle(tmp_path / "bundle")
    assert loaded.router.name == name and loaded.router.get_params() == trained.router.get_params()
    assert loaded.scenario_names == trained.scenario_names
    for scenario in SCENARIO_LIST:
        original, restored = trained.choice(scenario.name), loaded.choice(scenario.name)
        assert (restored.epoch, restored.tau, restored.rcs) == (original.epoch, original.tau, original.rcs)
        assert restored.scenario == scenario
        assert loaded.history[scenario.name] == trained.history[scenario.name]
        np.testing.assert_array_equal(restored.threshold.rcs_by_tau, original.threshold.rcs_by_tau)
        for got, want in zip(loaded.decide(X_test, scenario.name), trained.decide(X_test, scenario.name), strict=True):
            np.testing.assert_array_equal(got, want)


def test_manifest_records_router_scenarios_and_caller_settings(data, tmp_path: Path):
    trained = _train("ecvl", data)
    save_bundle(trained, tmp_path / "bundle", extra_manifest=EXTRA)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["router"] == "ecvl" and manifest["bundle_format"] == 1
    settings = manifest["settings"]
    assert settings["router"] == "ecvl" and settings["seed"] == 5 and settings["params"]["d_model"] == 32
    assert settings["task"] == EXTRA["settings"]["task"] and manifest["inputs"] == EXTRA["inputs"]
    assert manifest["label_rule"] == EXTRA["label_rule"] and manifest["features"] == EXTRA["features"]
    for scenario in SCENARIO_LIST:
        entry = manifest["scenarios"][scenario.name]
        choice = trained.choice(scenario.name)
        assert {k: entry[k] for k in ("mes", "alpha", "beta", "gamma", "cloud_allowed")} == {
            "mes": scenario.mes, "alpha": scenario.alpha, "beta": scenario.beta, "gamma": scenario.gamma,
            "cloud_allowed": scenario.cloud_allowed,
        }
        assert entry["tau"] == choice.tau and entry["best_epoch"] == choice.epoch
        assert (tmp_path / "bundle" / entry["state"] / "state.pt").is_file()
    assert load_bundle(tmp_path / "bundle").manifest == manifest


def test_only_distinct_states_are_stored_and_load_as_plain_weights(data, tmp_path: Path):
    trained = _train("ecvl", data)
    save_bundle(trained, tmp_path / "bundle")
    stored = sorted(p.name for p in (tmp_path / "bundle" / "states").iterdir())
    assert stored == [f"epoch-{e:03d}" for e in sorted({c.epoch for c in trained.choices.values()})]
    state = torch.load(tmp_path / "bundle" / "states" / stored[0] / "state.pt", weights_only=True)
    assert set(state) == {"inputs", "network"}


def test_an_existing_bundle_is_replaced_only_on_request(data, tmp_path: Path):
    trained = _train("all-small", data)
    save_bundle(trained, tmp_path / "bundle")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        save_bundle(trained, tmp_path / "bundle")
    save_bundle(trained, tmp_path / "bundle", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging folder left behind


def test_reserved_manifest_keys_are_refused(data, tmp_path: Path):
    with pytest.raises(ValueError, match="may not set 'scenarios'"):
        save_bundle(_train("all-small", data), tmp_path / "bundle", extra_manifest={"scenarios": []})


def test_broken_bundles_are_named(data, tmp_path: Path):
    with pytest.raises(BundleError, match="no manifest.json; not a router bundle"):
        load_bundle(tmp_path)
    save_bundle(_train("mlp", data), tmp_path / "bundle")
    for state in (tmp_path / "bundle" / "states").glob("*/state.pt"):
        state.write_bytes(b"not a torch file")
    with pytest.raises(BundleError, match="cannot read the router state of epoch"):
        load_bundle(tmp_path / "bundle")


def test_a_cut_manifest_is_named(data, tmp_path: Path):
    save_bundle(_train("all-small", data), tmp_path / "bundle")
    manifest = tmp_path / "bundle" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(BundleError, match=r"bundle/manifest.json: not a valid manifest"):
        load_bundle(tmp_path / "bundle")
