"""Items read on their own (``ecvl-router predict``): no responses or metadata needed, problems kept per line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ecvl_router.data import RSDValidationError, load_rsd, write_parquet
from ecvl_router.data.items import read_items


def _items_only(tiny_rsd: Path, tmp_path: Path, extra_lines: list[str] = ()) -> Path:
    """The tiny dataset's items and images alone, with ``extra_lines`` appended to items.jsonl."""
    root = tmp_path / "log"
    shutil.copytree(tiny_rsd / "images", root / "images")
    text = (tiny_rsd / "items.jsonl").read_text() + "".join(line + "\n" for line in extra_lines)
    (root / "items.jsonl").write_text(text)
    return root


def test_a_folder_with_items_alone_is_read_and_only_item_id_and_question_are_needed(tiny_rsd, tmp_path):
    root = _items_only(tiny_rsd, tmp_path, [json.dumps({"item_id": "q4", "question": "Just text?"})])
    items = read_items(root)
    assert items.file == "items.jsonl" and items.problems == []
    assert [line.item_id for line in items.readable] == ["q1", "q2", "q3", "q4"]
    first, text_only = items.lines[0], items.lines[3]
    assert first.image == "images/q1.png" and first.image_path == root / "images" / "q1.png"
    assert (text_only.line, text_only.question, text_only.image, text_only.image_path) == (4, "Just text?", None, None)
    with pytest.raises(RSDValidationError):  # the full dataset reader still wants dataset.json and responses
        load_rsd(root)


def test_each_bad_line_keeps_its_problems_and_the_others_stay_readable(tiny_rsd, tmp_path):
    root = _items_only(tiny_rsd, tmp_path, [
        "{broken",
        json.dumps({"item_id": "q5", "image": None}),
        json.dumps({"item_id": "q1", "question": "again"}),
        json.dumps({"item_id": "q6", "question": "where?", "image": "images/gone.png"}),
        json.dumps({"item_id": "q7", "question": "what?", "colour": "red"}),
        json.dumps(["not", "an", "object"]),
        "",
    ])
    items = read_items(root)
    assert [line.item_id for line in items.readable] == ["q1", "q2", "q3"]
    bad = {line.line: (line.item_id, [str(problem) for problem in line.problems]) for line in items.lines if not line.readable}
    assert bad[4][0] is None and bad[4][1][0].startswith("items.jsonl:4: malformed JSON")
    assert bad[5] == ("q5", ["items.jsonl:5: field 'question': missing required field"])
    assert bad[6] == ("q1", ["items.jsonl:6: field 'item_id': duplicate item_id 'q1' (first on line 1)"])
    assert bad[7] == ("q6", ["items.jsonl:7: field 'image': image file 'images/gone.png' not found"])
    assert bad[8] == ("q7", ["items.jsonl:8: field 'colour': unknown field"])
    assert bad[9] == (None, ["items.jsonl:9: expected a JSON object, got list"])
    assert sorted(bad) == [4, 5, 6, 7, 8, 9]  # the blank line 10 is no item


def test_parquet_items_are_read_too_and_a_folder_without_items_is_refused(tiny_rsd, tmp_path):
    native = write_parquet(load_rsd(tiny_rsd), tmp_path / "native")
    items = read_items(native)
    assert items.file == "items.parquet" and [line.item_id for line in items.readable] == ["q1", "q2", "q3"]
    assert items.lines[2].image is None and items.lines[1].image_path == native / "images" / "q2.png"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected items.jsonl or items.parquet"):
        read_items(tmp_path / "empty")
    (native / "items.parquet").write_bytes(b"not parquet")
    with pytest.raises(RSDValidationError, match="cannot read Parquet file"):
        read_items(native)
