"""The durable JSONL results store: group commits, torn-tail repair, one writer at a time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ecvl_router.collect.store import RecordWriter, StoreLockedError, latest, read_records


def run(coroutine):
    return asyncio.run(coroutine)


def test_every_appended_record_is_on_disk_after_close(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "results.jsonl"

    async def write() -> int:
        async with RecordWriter(path) as writer:
            for i in range(500):
                writer.append({"item_id": f"q{i}", "model": "m", "ok": True, "text": "é"})
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the writer commit a batch mid-way
        return writer.written

    assert run(write()) == 500
    records = read_records(path)
    assert [r["item_id"] for r in records] == [f"q{i}" for i in range(500)]
    assert records[0]["text"] == "é"


def test_records_reach_the_file_while_the_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"

    async def write() -> list[dict]:
        async with RecordWriter(path) as writer:
            writer.append({"item_id": "a", "model": "m"})
            for _ in range(100):
                await asyncio.sleep(0.001)
                if read_records(path):
                    break
            return read_records(path)

    assert run(write()) == [{"item_id": "a", "model": "m"}]


def test_a_torn_last_line_is_ignored_then_dropped_before_appending(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"item_id": "a", "model": "m", "ok": true}\n{"item_id": "b", "mod')
    assert [r["item_id"] for r in read_records(path)] == ["a"]

    async def append() -> None:
        async with RecordWriter(path) as writer:
            writer.append({"item_id": "c", "model": "m", "ok": True})

    run(append())
    assert "incomplete last line" in caplog.text
    lines = path.read_text().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == ["a", "c"]


def test_a_complete_line_without_newline_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"item_id": "a"}\n{"item_id": "b"}')
    assert [r["item_id"] for r in read_records(path)] == ["a"]


def test_corrupt_middle_lines_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"item_id": "a"}\nnot json\n[1, 2]\n{"item_id": "b"}\n')
    assert [r["item_id"] for r in read_records(path)] == ["a", "b"]
    assert "results.jsonl:2" in caplog.text and "results.jsonl:3" in caplog.text


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"

    async def twice() -> None:
        async with RecordWriter(path):
            async with RecordWriter(path):
                pass

    with pytest.raises(StoreLockedError, match="another process"):
        run(twice())

    async def again() -> None:  # the lock is released on close
        async with RecordWriter(path) as writer:
            writer.append({"x": 1})

    run(again())
    assert read_records(path) == [{"x": 1}]


def test_latest_record_wins() -> None:
    records = [
        {"item_id": "a", "model": "m", "ok": False},
        {"item_id": "a", "model": "n", "ok": True},
        {"item_id": "a", "model": "m", "ok": True},
    ]
    view = latest(records)
    assert view[("a", "m")]["ok"] is True and len(view) == 2
