"""RSD loading, validation (every error kind), round trips, pair view and statistics."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.data import RSDValidationError, check_dataset, load_rsd, write_interchange, write_parquet
from ecvl_router.data.summary import summarize
from tests.conftest import write_tiny_rsd
from tests.strict_json import strict_loads


def _rewrite(path, mutate):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in mutate(lines)))


def _problems(root):
    rsd, problems = check_dataset(root)
    assert rsd is None
    return [str(p) for p in problems]


def test_loads_a_valid_dataset(tiny_rsd):
    rsd = load_rsd(tiny_rsd)
    assert rsd.storage == "interchange"
    assert rsd.models == ["a", "b"]
    assert rsd.sources == ["charts", "ocr"]
    assert rsd.image_path(rsd.items.loc[0, "image"]) == tiny_rsd / "images" / "q1.png"
    assert rsd.image_path(rsd.items.loc[2, "image"]) is None


def test_pair_view_aligns_and_counts_exclusions(tiny_rsd):
    view = load_rsd(tiny_rsd).pair(edge="a", cloud="b")
    assert view.item_ids.tolist() == ["q1", "q2"]
    assert view.score_edge.tolist() == [9, 2] and view.score_cloud.tolist() == [8, 7.5]
    assert view.latency_cloud.tolist() == [2.5, 3.0]
    assert view.tokens_edge[0] == 1 and math.isnan(view.tokens_edge[1])
    assert (view.missing_edge, view.missing_cloud, view.n_excluded) == (0, 1, 1)
    with pytest.raises(KeyError, match="model 'c' not in dataset"):
        load_rsd(tiny_rsd).pair(edge="c", cloud="b")


@pytest.mark.parametrize(
    "file, mutate, expected",
    [
        ("items.jsonl", lambda r: [{k: v for k, v in r[0].items() if k != "source"}] + r[1:], "items.jsonl:1: field 'source': missing required field"),
        ("items.jsonl", lambda r: [{**r[0], "colour": "red"}] + r[1:], "items.jsonl:1: field 'colour': unknown field"),
        ("items.jsonl", lambda r: r + [r[0]], "items.jsonl:4: field 'item_id': duplicate item_id 'q1' (first on line 1)"),
        ("items.jsonl", lambda r: [{**r[0], "question": 42}] + r[1:], "items.jsonl:1: field 'question': must be a string"),
        ("items.jsonl", lambda r: [{**r[0], "question": "  "}] + r[1:], "items.jsonl:1: field 'question': must not be empty"),
        ("items.jsonl", lambda r: [{**r[0], "image": "images/none.png"}] + r[1:], "items.jsonl:1: field 'image': image file 'images/none.png' not found"),
        ("items.jsonl", lambda r: [{**r[0], "image": "../escape.png"}] + r[1:], "must be a path relative to the dataset folder"),
        ("items.jsonl", lambda r: r + [[1, 2]], "items.jsonl:4: expected a JSON object, got list"),
        ("responses.jsonl", lambda r: r + [dict(r[0])], "responses.jsonl:6: field 'model': duplicate response of 'a' for item 'q1' (first on line 1)"),
        ("responses.jsonl", lambda r: [{**r[0], "score": 11}] + r[1:], "responses.jsonl:1: field 'score': score 11 is outside the scale [1, 10]"),
        ("responses.jsonl", lambda r: [{**r[0], "score": 0.5}] + r[1:], "score 0.5 is outside the scale"),
        ("responses.jsonl", lambda r: [{**r[0], "score": "high"}] + r[1:], "field 'score': must be a number, got str"),
        ("responses.jsonl", lambda r: [{**r[0], "latency_s": -1}] + r[1:], "responses.jsonl:1: field 'latency_s': must be a finite number >= 0"),
        ("responses.jsonl", lambda r: [{**r[0], "latency_s": float("nan")}] + r[1:], "field 'latency_s': must be a finite number >= 0, got nan"),
        ("responses.jsonl", lambda r: [{**r[0], "output_tokens": -3}] + r[1:], "field 'output_tokens': must be >= 0"),
        ("responses.jsonl", lambda r: [{**r[0], "output_tokens": 2.5}] + r[1:], "field 'output_tokens': must be an integer"),
        ("responses.jsonl", lambda r: [{**r[0], "item_id": "q9"}] + r[1:], "responses.jsonl:1: field 'item_id': response for unknown item 'q9'"),
        ("responses.jsonl", lambda r: [{k: v for k, v in r[0].items() if k != "latency_s"}] + r[1:], "field 'latency_s': missing required field"),
        ("responses.jsonl", lambda r: [{**r[0], "extra": 1}] + r[1:], "responses.jsonl:1: field 'extra': unknown field"),
    ],
)
def test_validation_names_file_line_and_field(tiny_rsd, file, mutate, expected):
    _rewrite(tiny_rsd / file, mutate)
    problems = _problems(tiny_rsd)
    assert any(expected in p for p in problems), problems


def test_malformed_json_line(tiny_rsd):
    path = tiny_rsd / "items.jsonl"
    path.write_text(path.read_text() + '{"item_id": "q4", \n')
    assert any(p.startswith("items.jsonl:4: malformed JSON") for p in _problems(tiny_rsd))


def test_unreadable_image_and_bad_metadata(tiny_rsd):
    (tiny_rsd / "images" / "q2.png").write_bytes(b"this is not a png")
    assert any("'images/q2.png' cannot be read as an image" in p for p in _problems(tiny_rsd))
    (tiny_rsd / "dataset.json").write_text(json.dumps({"name": "x", "score_min": 10, "score_max": 1, "description": ""}))
    assert any("score_max (1) must exceed score_min (10)" in p for p in _problems(tiny_rsd))
    (tiny_rsd / "dataset.json").write_text("{")
    assert any(p.startswith("dataset.json: malformed JSON") for p in _problems(tiny_rsd))


def test_missing_files(tiny_rsd, tmp_path):
    (tiny_rsd / "responses.jsonl").unlink()
    assert "responses.jsonl: file not found" in _problems(tiny_rsd)
    with pytest.raises(FileNotFoundError, match="not a Response Score Dataset"):
        load_rsd(tmp_path)


def test_every_problem_is_reported_not_just_the_first(tiny_rsd):
    _rewrite(tiny_rsd / "responses.jsonl", lambda r: [{**x, "score": 99} for x in r])
    with pytest.raises(RSDValidationError) as info:
        load_rsd(tiny_rsd)
    assert len(info.value.problems) == 5


def test_parquet_round_trip(tiny_rsd, tmp_path):
    original = load_rsd(tiny_rsd)
    native = load_rsd(write_parquet(original, tmp_path / "native"))
    assert native.storage == "parquet"
    assert native.manifest["producer"] == "ecvl-router data import"
    back = load_rsd(write_interchange(native, tmp_path / "back"))
    for a, b in ((original, native), (original, back)):
        assert a.items.equals(b.items)
        assert a.responses.equals(b.responses)
        assert a.info == b.info
    assert (tmp_path / "back" / "images" / "q1.png").read_bytes() == (tiny_rsd / "images" / "q1.png").read_bytes()
    lines = [(tmp_path / "back" / "responses.jsonl"), (tiny_rsd / "responses.jsonl")]
    exported, written = ([json.loads(x) for x in path.read_text().splitlines()] for path in lines)
    assert exported == written


def test_parquet_is_validated_too(tiny_rsd, tmp_path):
    native = write_parquet(load_rsd(tiny_rsd), tmp_path / "native")
    import pyarrow.parquet as pq

    table = pq.read_table(native / "responses.parquet").to_pandas()
    table.loc[1, "score"] = 42.0
    table.to_parquet(native / "responses.parquet", index=False)
    assert any("responses.parquet:2: field 'score': score 42 is outside the scale" in p for p in _problems(native))


def test_import_refuses_to_overwrite(tiny_rsd, tmp_path):
    out = write_parquet(load_rsd(tiny_rsd), tmp_path / "native")
    with pytest.raises(FileExistsError, match="--force"):
        write_parquet(load_rsd(tiny_rsd), out)
    write_parquet(load_rsd(tiny_rsd), out, force=True)


def test_summary_figures(tiny_rsd):
    summary = summarize(load_rsd(tiny_rsd))
    assert summary["items"] == 3 and summary["responses"] == 5 and summary["text_only_items"] == 1
    assert summary["score_mean"] == pytest.approx((9 + 8 + 2 + 7.5 + 10) / 5)
    assert summary["score_median"] == 8
    assert summary["latency_p50"] == pytest.approx(0.5)
    assert summary["latency_p99"] == pytest.approx(np.percentile([0.5, 2.5, 0.4, 3.0, 0.1], 99))
    assert summary["per_model"]["b"]["latency_mean"] == pytest.approx(2.75)
    assert summary["per_source"]["charts"]["score_mean"] == pytest.approx((9 + 8 + 10) / 3)
    assert summary["items_per_source"] == {"charts": 2, "ocr": 1}


def test_other_score_scale(tmp_path):
    root = write_tiny_rsd(tmp_path / "pct", score_max=100)
    _rewrite(root / "responses.jsonl", lambda r: [{**r[0], "score": 99}] + r[1:])
    rsd = load_rsd(root)
    assert (rsd.info.score_min, rsd.info.score_max) == (1, 100)
    assert rsd.pair("a", "b").score_edge[0] == 99


def test_cli_validate_import_info(tiny_rsd, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "validate", str(tiny_rsd)])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["data", "import", str(tiny_rsd), "--out", str(tmp_path / "n")]).exit_code == 0
    info = runner.invoke(app, ["data", "info", str(tmp_path / "n"), "--json"])
    assert info.exit_code == 0 and strict_loads(info.stdout)["responses"] == 5
    _rewrite(tiny_rsd / "responses.jsonl", lambda r: [{**r[0], "score": 11}] + r[1:])
    bad = runner.invoke(app, ["data", "validate", str(tiny_rsd)])
    assert bad.exit_code == 1
    assert "responses.jsonl:1: field 'score'" in bad.stdout
