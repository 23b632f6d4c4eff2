"""Grouped data through the CLI, with tiny encoders: `train` splits by group and says so, `evaluate` reopens the
run, `evaluate-routers` and `check-guarantee` fold by group and say so."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from ecvl_router.data.demo import DEMO_PAIRS, generate_demo

from tests.cli_support import invoke
from tests.serve_support import write_tiny_encoders

CLOUD, EDGE = DEMO_PAIRS[0]
GROUP_SIZE = 5

pytestmark = pytest.mark.slow  # a 200-item demo embedded with tiny encoders, three trainings, a 2-fold comparison


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A demo dataset whose items form groups of five within each source."""
    root = tmp_path_factory.mktemp("groups")
    generate_demo(root / "data", n_items=200, seed=5)
    items_file = root / "data" / "items.jsonl"
    items = [json.loads(line) for line in items_file.read_text().splitlines()]
    seen: Counter[str] = Counter()
    for item in items:
        item["group"] = f"{item['source']}-{seen[item['source']] // GROUP_SIZE}"
        seen[item["source"]] += 1
    items_file.write_text("".join(json.dumps(item) + "\n" for item in items))
    write_tiny_encoders(root / "encoders")
    return root


def common(workspace):
    return ("--encoders", workspace / "encoders" / "encoders.yaml", "--cache-dir", workspace / "cache")


def _groups(workspace) -> dict[str, str]:
    lines = (workspace / "data" / "items.jsonl").read_text().splitlines()
    return {item["item_id"]: item["group"] for item in map(json.loads, lines)}


def _n_groups(workspace) -> int:
    return len(set(_groups(workspace).values()))


@pytest.mark.parametrize("extra", [(), ("--holdout-sources", "chart_reading")])
def test_train_splits_by_group_and_evaluate_reopens_the_run(workspace, extra):
    run = workspace / f"run{len(extra)}"
    trained = invoke("train", "--data", workspace / "data", "--edge", EDGE, "--cloud", CLOUD, "--out", run,
                     "--recipe", "oof", *extra, *common(workspace))
    assert f"split grouped: each of {_n_groups(workspace)} groups lies in one part" in " ".join(trained.stdout.split())
    assert json.loads((run / "manifest.json").read_text())["settings"]["task"]["split_groups"] == _n_groups(workspace)
    group_of = _groups(workspace)
    parts = {name: {group_of[i] for i in ids} for name, ids in json.loads((run / "split.json").read_text()).items()}
    assert all(parts[name] for name in ("train", "val", "test"))
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])
    report = json.loads(invoke("evaluate", run, "--json", "--cache-dir", workspace / "cache").stdout)
    assert report["n"] == len(json.loads((run / "split.json").read_text())["test"])


def test_evaluate_routers_and_check_guarantee_fold_by_group(workspace):
    out = workspace / "comparison"
    compared = invoke("evaluate-routers", "--data", workspace / "data", "--edge", EDGE, "--cloud", CLOUD, "--out", out,
                      "--folds", 2, "--repeats", 1, "--inner-folds", 2, "--routers", "linear,linear:oof", *common(workspace))
    grouped = f"grouped: each of {_n_groups(workspace)} groups in one test fold"
    assert grouped in " ".join(compared.stdout.split()) and grouped in (out / "report.md").read_text(encoding="utf-8")
    checked = workspace / "guarantee"
    result = invoke("check-guarantee", "--data", workspace / "data", "--edge", EDGE, "--cloud", CLOUD, "--mes", 6,
                    "--out", checked, "--router", "linear", "--repetitions", 5, "--max-quality-drop", 0.1,
                    "--confidence", 0.9, *common(workspace))
    assert f"grouped: each of {_n_groups(workspace)} groups" in " ".join(result.stdout.split())
    assert json.loads((checked / "manifest.json").read_text())["settings"]["split_groups"] == _n_groups(workspace)
    probabilities = pd.read_csv(checked / "probabilities.csv")
    assert probabilities["group"].tolist() == [_groups(workspace)[i] for i in probabilities["item_id"]]
