"""Benchmark loaders: interchange folders, JSONL/CSV tables, Hugging Face datasets (local Parquet), presets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from ecvl_router.collect.benchmarks import BenchmarkError, ColumnMap, HubSpec, hub_presets, load_benchmark, load_hub_items
from ecvl_router.collect.workspace import CollectionDir
from ecvl_router.data import load_rsd
from tests.conftest import write_tiny_rsd

PAPER_BENCHMARKS = {"wildvision", "chartqa", "gqa", "vizwiz", "mmvet", "mmmu-pro", "mmstar"}


def png(colour: tuple[int, int, int], size: tuple[int, int] = (12, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("responses", [None, ""])
def test_interchange_folder_without_responses(tmp_path: Path, responses: str | None) -> None:
    root = write_tiny_rsd(tmp_path / "bench")
    (root / "responses.jsonl").unlink()
    if responses is not None:
        (root / "responses.jsonl").write_text(responses)
    items = list(load_benchmark(str(root)))
    assert [item.item_id for item in items] == ["q1", "q2", "q3"]
    assert items[0].image == root / "images" / "q1.png" and items[2].image is None
    assert items[0].reference == "7" and items[1].reference is None
    assert [item.item_id for item in load_benchmark(str(root), limit=2)] == ["q1", "q2"]


def test_interchange_folder_problems_are_listed(tmp_path: Path) -> None:
    root = write_tiny_rsd(tmp_path / "bench")
    (root / "images" / "q2.png").unlink()
    with open(root / "items.jsonl", "a") as handle:
        handle.write(json.dumps({"item_id": "q1", "source": "s", "question": "dup", "image": None, "reference": None}) + "\n")
    with pytest.raises(BenchmarkError) as caught:
        list(load_benchmark(str(root)))
    assert "items.jsonl:2: field 'image'" in str(caught.value)
    assert "duplicate item_id 'q1'" in str(caught.value)


def test_jsonl_table_with_configured_columns(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png((255, 0, 0)))
    rows = [
        {"qid": 1, "prompt": "What colour?", "img": "pics/a.png", "gold": ["red", "red", "crimson"], "family": "colours"},
        {"qid": 2, "prompt": "Say hi", "img": None, "gold": None, "family": "chat"},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    columns = ColumnMap(question="prompt", image="img", reference="gold", id="qid", source="family")
    first, second = load_benchmark(str(path), columns=columns)
    assert (first.item_id, first.source, first.question, first.reference) == ("1", "colours", "What colour?", "red / crimson")
    assert first.image == tmp_path / "pics" / "a.png"
    assert (second.item_id, second.image, second.reference) == ("2", None, None)


def test_csv_table_with_usual_column_names(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg")
    path = tmp_path / "survey.csv"
    path.write_text("question,image,answer\nWhat is shown?,x.jpg,a square\nText only?,,yes\n")
    first, second = load_benchmark(str(path))
    assert (first.item_id, first.source, first.reference) == ("survey-0", "survey", "a square")
    assert first.image == tmp_path / "x.jpg" and second.image is None


@pytest.mark.parametrize(
    "content, columns, message",
    [
        ("question,image\nQ,missing.png\n", ColumnMap(), "survey.csv:2: image 'missing.png' (column 'image') not found"),
        ("prompt\nQ\n", ColumnMap(), "no question column"),
        ("question\nQ\n", ColumnMap(reference="gold"), "no column 'gold' (for reference)"),
        ("question,id\nQ,1\nR,1\n", ColumnMap(), "survey.csv:3: duplicate id '1'"),
        ("question\n \n", ColumnMap(), "survey.csv:2: empty question"),
    ],
)
def test_table_errors_name_file_row_and_column(tmp_path: Path, content: str, columns: ColumnMap, message: str) -> None:
    path = tmp_path / "survey.csv"
    path.write_text(content)
    with pytest.raises(BenchmarkError) as caught:
        list(load_benchmark(str(path), columns=columns))
    assert message in str(caught.value)


def test_unknown_benchmark_lists_the_presets() -> None:
    with pytest.raises(BenchmarkError, match="chartqa"):
        load_benchmark("no-such-benchmark")


def test_presets_cover_the_papers_benchmarks() -> None:
    presets = hub_presets()
    assert set(presets) == PAPER_BENCHMARKS
    for name, spec in presets.items():
        assert spec.columns.question and spec.source, name
        assert spec.columns.image or spec.image_config, name


def _save(dataset: datasets.Dataset, folder: Path, split: str) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def _save_configs(folder: Path, configs: dict[str, datasets.Dataset], split: str) -> Path:
    """A local dataset laid out like a Hub repository with several named configs."""
    card = "---\nconfigs:\n"
    for index, (name, dataset) in enumerate(configs.items()):
        (folder / f"config{index}").mkdir(parents=True)
        dataset.to_parquet(str(folder / f"config{index}" / f"{split}-00000-of-00001.parquet"))
        card += f"- config_name: {name}\n  data_files:\n  - split: {split}\n    path: config{index}/*.parquet\n"
    (folder / "README.md").write_text(card + "---\n")
    return folder


def test_hub_dataset_with_image_feature_and_choices(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "options": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "image_1": datasets.Image(),
        }
    )
    table = {
        "id": ["validation_Art_1", "validation_Art_2"],
        "question": ["Which colour dominates <image 1>?", "Count the shapes."],
        "options": ["['red', 'green', 'blue']", "['1', '2']"],
        "answer": ["B", "A"],
        "image_1": [{"bytes": png((0, 255, 0)), "path": None}, {"bytes": png((0, 0, 255)), "path": None}],
    }
    spec = hub_presets()["mmmu-pro"]
    folder = _save_configs(tmp_path / "mmmu-like", {spec.config: datasets.Dataset.from_dict(table, features=features)}, spec.split)
    spec = spec.model_copy(update={"dataset": str(folder)})
    first, second = load_hub_items(spec, cache_dir=tmp_path / "cache")
    assert first.item_id == "MMMU-Pro-validation_Art_1" and first.source == "MMMU-Pro"
    assert first.question.endswith("Options:\nA. red\nB. green\nC. blue")
    assert first.reference == "B. green" and second.reference == "A. 1"
    assert first.image == png((0, 255, 0))
    assert len(list(load_hub_items(spec, limit=1, cache_dir=tmp_path / "cache"))) == 1


def test_generic_hub_dataset_with_image_bytes_column(tmp_path: Path) -> None:
    table = {"query": ["What is shown?", "Describe"], "label": [["a cat"], ["a dog", "dog"]], "picture": [png((1, 2, 3)), png((4, 5, 6))]}
    folder = _save(datasets.Dataset.from_dict(table), tmp_path / "plain", "validation")
    spec = HubSpec(dataset=str(folder), split="validation", source="plain", columns=ColumnMap(question="query", image="picture", reference="label"))
    items = list(load_hub_items(spec, cache_dir=tmp_path / "cache"))
    assert [item.item_id for item in items] == ["plain-0", "plain-1"]
    assert items[1].reference == "a dog / dog" and items[1].image == png((4, 5, 6))


def test_hub_images_joined_from_a_second_config(tmp_path: Path) -> None:
    folder = tmp_path / "gqa-like"
    questions = datasets.Dataset.from_dict({"id": ["201", "202"], "imageId": ["n1", "n2"], "question": ["Is it red?", "Is it round?"], "answer": ["yes", "no"]})
    images = datasets.Dataset.from_dict(
        {"id": ["n2", "n1"], "image": [{"bytes": png((0, 0, 9)), "path": None}, {"bytes": png((9, 0, 0)), "path": None}]},
        features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
    )
    spec = hub_presets()["gqa"]
    _save_configs(folder, {spec.config: questions, spec.image_config: images}, spec.split)
    spec = spec.model_copy(update={"dataset": str(folder)})
    first, second = load_hub_items(spec, cache_dir=tmp_path / "cache")
    assert (first.item_id, first.reference, first.image) == ("GQA-201", "yes", png((9, 0, 0)))
    assert second.image == png((0, 0, 9))


def test_hub_load_failure_names_the_dataset(tmp_path: Path) -> None:
    spec = HubSpec(dataset=str(tmp_path / "nothing-here"), source="x")
    with pytest.raises(BenchmarkError, match="cannot load Hugging Face dataset"):
        list(load_hub_items(spec, cache_dir=tmp_path / "cache"))


def test_collection_folder_stores_items_and_images(tmp_path: Path) -> None:
    bench = write_tiny_rsd(tmp_path / "bench")
    workspace = CollectionDir(tmp_path / "out")
    records = workspace.add_items(load_benchmark(str(bench)), dataset_name="mine")
    assert [r["image"] for r in records] == ["images/q1.png", "images/q2.png", None]
    assert (tmp_path / "out" / "images" / "q1.png").read_bytes() == (bench / "images" / "q1.png").read_bytes()
    # adding the same items again changes nothing; new items are appended
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": "odd id/1", "question": "New?", "image": str(bench / "images" / "q2.png")}) + "\n")
    workspace.add_items(load_benchmark(str(bench)), dataset_name="mine")
    (added,) = workspace.add_items(load_benchmark(str(extra)), dataset_name="mine")
    assert added["image"].startswith("images/odd_id_1-") and added["image"].endswith(".png")
    assert [r["item_id"] for r in workspace.read_items()] == ["q1", "q2", "q3", "odd id/1"]
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["name"] == "mine"


def test_a_changed_item_is_refused(tmp_path: Path) -> None:
    bench = write_tiny_rsd(tmp_path / "bench")
    workspace = CollectionDir(tmp_path / "out")
    workspace.add_items(load_benchmark(str(bench)), dataset_name="mine")
    Image.new("RGB", (32, 24), (0, 0, 200)).save(bench / "images" / "q1.png")
    with pytest.raises(BenchmarkError, match="'q1' differs .*image content"):
        workspace.add_items(load_benchmark(str(bench)), dataset_name="mine")


def test_duplicate_ids_across_benchmarks_are_refused(tmp_path: Path) -> None:
    bench = write_tiny_rsd(tmp_path / "bench")
    workspace = CollectionDir(tmp_path / "out")
    with pytest.raises(BenchmarkError, match="'q1' appears twice"):
        workspace.add_items([*load_benchmark(str(bench)), *load_benchmark(str(bench))], dataset_name="mine")


def test_stored_items_are_a_valid_item_table(tmp_path: Path) -> None:
    bench = write_tiny_rsd(tmp_path / "bench")
    out = tmp_path / "out"
    CollectionDir(out).add_items(load_benchmark(str(bench)), dataset_name="mine")
    (out / "responses.jsonl").write_text("")
    rsd = load_rsd(out, decode_images=True)
    assert list(rsd.items["item_id"]) == ["q1", "q2", "q3"]
