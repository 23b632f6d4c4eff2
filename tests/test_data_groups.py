"""Groups in the data format: validated, read from JSONL and Parquet, written back, counted by `data info`,
carried by pair views."""

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.collect.benchmarks import BenchmarkError, load_benchmark
from ecvl_router.collect.workspace import CollectionDir
from ecvl_router.data import check_dataset, load_rsd, write_interchange, write_parquet
from ecvl_router.data.summary import summarize
from tests.strict_json import strict_loads


def _rewrite(path, mutate):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in mutate(lines)))


def _grouped(root, groups=("g1", "g1", None)):
    """``root``'s items with ``groups`` (None: the item names no group)."""
    _rewrite(root / "items.jsonl", lambda rows: [{**r, "group": g} if g is not None else r for r, g in zip(rows, groups)])
    return root


def test_a_dataset_with_groups_loads_and_an_item_without_one_is_a_group_of_its_own(tiny_rsd):
    rsd = load_rsd(_grouped(tiny_rsd))
    assert rsd.has_groups and rsd.n_groups == 1
    assert rsd.group_keys().tolist() == ["g1", "g1", "q3"]
    view = rsd.pair(edge="a", cloud="b")  # q3 lacks model b
    assert view.grouped and view.groups.tolist() == ["g1", "g1"] and view.n_groups == 1
    assert view.take([1]).groups.tolist() == ["g1"]


def test_without_groups_nothing_changes(tiny_rsd):
    rsd = load_rsd(tiny_rsd)
    assert not rsd.has_groups and rsd.n_groups == 0 and rsd.group_keys() is None
    view = rsd.pair(edge="a", cloud="b")
    assert view.groups is None and not view.grouped and view.n_groups == 0 and view.take([0]).groups is None


@pytest.mark.parametrize(
    "value, message",
    [
        (7, "items.jsonl:2: field 'group': must be a string, got int"),
        ("", "items.jsonl:2: field 'group': must not be empty"),
        ("   ", "items.jsonl:2: field 'group': must not be empty"),
        (None, "items.jsonl:2: field 'group': must not be null"),
        (["g1"], "items.jsonl:2: field 'group': must be a string, got list"),
    ],
)
def test_a_bad_group_is_reported_with_file_line_and_field(tiny_rsd, value, message):
    _rewrite(tiny_rsd / "items.jsonl", lambda rows: [rows[0], {**rows[1], "group": value}, rows[2]])
    rsd, problems = check_dataset(tiny_rsd)
    assert rsd is None and [str(p) for p in problems] == [message]


def test_a_bad_group_in_parquet_is_reported_with_its_row(tiny_rsd, tmp_path):
    native = write_parquet(load_rsd(_grouped(tiny_rsd)), tmp_path / "native")
    table = pq.read_table(native / "items.parquet").to_pandas()
    table.loc[1, "group"] = " "
    table.to_parquet(native / "items.parquet", index=False)
    _, problems = check_dataset(native)
    assert [str(p) for p in problems] == ["items.parquet:2: field 'group': must not be empty"]


def test_groups_survive_import_and_export(tiny_rsd, tmp_path):
    original = load_rsd(_grouped(tiny_rsd))
    native = load_rsd(write_parquet(original, tmp_path / "native"))
    assert pq.read_schema(tmp_path / "native" / "items.parquet").names[-1] == "group"
    assert native.manifest["counts"]["groups"] == 1
    back = load_rsd(write_interchange(native, tmp_path / "back"))
    for copy in (native, back):
        assert copy.items.equals(original.items)
        assert copy.group_keys().tolist() == ["g1", "g1", "q3"]
    exported, written = ([json.loads(x) for x in (root / "items.jsonl").read_text().splitlines()] for root in (tmp_path / "back", tiny_rsd))
    assert exported == written  # a group where one was given, no field where none was


def test_a_dataset_without_groups_is_stored_as_before(tiny_rsd, tmp_path):
    write_parquet(load_rsd(tiny_rsd), tmp_path / "native")
    assert "group" not in pq.read_schema(tmp_path / "native" / "items.parquet").names
    native = load_rsd(tmp_path / "native")
    assert "groups" not in native.manifest["counts"] and not native.has_groups
    write_interchange(native, tmp_path / "back")
    assert (tmp_path / "back" / "items.jsonl").read_text() == (tiny_rsd / "items.jsonl").read_text()


def test_info_counts_groups_and_items_per_group(tiny_rsd):
    plain = summarize(load_rsd(tiny_rsd))
    assert (plain["groups"], plain["items_per_group"], plain["items_without_group"]) == (0, {}, 0)
    runner = CliRunner()
    assert "groups" not in runner.invoke(app, ["data", "info", str(tiny_rsd)]).stdout
    _grouped(tiny_rsd, ("g1", "g1", None))
    as_json = strict_loads(runner.invoke(app, ["data", "info", str(tiny_rsd), "--json"]).stdout)
    assert (as_json["groups"], as_json["items_per_group"], as_json["items_without_group"]) == (1, {"g1": 2}, 1)
    text = " ".join(runner.invoke(app, ["data", "info", str(tiny_rsd)]).stdout.split())
    assert "1 groups (every split keeps a group on one side): items per group min 2, median 2, max 2; 1 items without a group" in text
    validated = runner.invoke(app, ["data", "validate", str(tiny_rsd)])
    assert validated.exit_code == 0, validated.output


def test_summary_of_two_groups(tiny_rsd):
    summary = summarize(load_rsd(_grouped(tiny_rsd, ("g1", "g2", "g1"))))
    assert summary["groups"] == 2 and summary["items_per_group"] == {"g1": 2, "g2": 1} and summary["items_without_group"] == 0


def test_collecting_a_folder_keeps_its_groups(tiny_rsd, tmp_path):
    _grouped(tiny_rsd)
    workspace = CollectionDir(tmp_path / "out")
    records = workspace.add_items(load_benchmark(str(tiny_rsd)), dataset_name="mine")
    assert [r.get("group") for r in records] == ["g1", "g1", None] and "group" not in records[2]
    _grouped(tiny_rsd, ("g1", "g2", None))
    with pytest.raises(BenchmarkError, match="'q2' differs .*group"):
        workspace.add_items(load_benchmark(str(tiny_rsd)), dataset_name="mine")
