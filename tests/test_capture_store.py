"""The capture store on its own: what it keeps and refuses, two writer processes at once, and kill -9 of a writer."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from ecvl_router.capture_store import (
    SCHEMA_VERSION,
    AnswerRecord,
    CapturedImage,
    CaptureRecord,
    CaptureStore,
    CaptureStoreError,
    FeedbackRecord,
)

PER_WRITER = 120
BATCH = 4


def png(colour: tuple[int, int, int]) -> CapturedImage:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format="PNG")
    return CapturedImage(buffer.getvalue(), "png")


SHARED = png((10, 200, 30))


def capture(request_id: str, image: CapturedImage | None = SHARED) -> CaptureRecord:
    return CaptureRecord(request_id, "quality", "cloud", 0.25, 0.5, None, f"question of {request_id}?", image, False)


def served(request_id: str) -> AnswerRecord:
    return AnswerRecord(request_id, "cloud", "served", "cloud-model", "cloud-id", True, f"answer to {request_id}", 0.5, 10, 3)


def write_many(folder: str, writer: int, count: int, start_together: threading.Barrier) -> None:
    """A writer process: ``count`` captures with their answers, BATCH to a transaction, its own image and the shared one."""
    store = CaptureStore(Path(folder))
    start_together.wait(timeout=120)
    own = png((writer * 40 % 256, 10, 10))
    for start in range(0, count, BATCH):
        records = []
        for index in range(start, min(start + BATCH, count)):
            request_id = f"w{writer}-{index:05d}"
            records += [capture(request_id, SHARED if index % 2 else own), served(request_id)]
        assert all(store.write(records))


def write_forever(folder: str) -> None:
    store = CaptureStore(Path(folder))
    index = 0
    while True:
        request_id = f"k-{index:06d}"
        store.write([capture(request_id, png((index % 256, 0, 0))), served(request_id)])
        index += 1


def test_records_round_trip_and_what_the_store_refuses(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "capture")
    assert store.write([capture("a"), served("a"), FeedbackRecord("a", 6, "fine")]) == [True, True, True]
    assert store.write([served("missing"), FeedbackRecord("missing", 5, None), capture("a", None)]) == [False, False, False]
    assert store.write([FeedbackRecord("a", 9.5, None)]) == [True]
    (row,) = store.rows("captures")
    assert row["image_sha256"] == SHARED.sha256 and store.image_path(SHARED.sha256, "png").read_bytes() == SHARED.data
    assert [(f["score"], f["comment"]) for f in store.rows("feedback")] == [(9.5, None)]
    assert len(store.rows("answers")) == 1
    with pytest.raises(ValueError, match="no table"):
        store.rows("sqlite_master")

    store.bind_scale(1, 10)
    store.bind_scale(1, 10)
    assert CaptureStore(tmp_path / "capture").scale() == (1.0, 10.0)
    with pytest.raises(CaptureStoreError, match=r"score scale \[1, 10\].*\[0, 100\]"):
        store.bind_scale(0, 100)

    with pytest.raises(CaptureStoreError, match="not a capture folder"):
        CaptureStore(tmp_path / "elsewhere", create=False)
    with sqlite3.connect(store.path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CaptureStoreError, match="newer than this ecvl-router"):
        CaptureStore(tmp_path / "capture")


def test_two_writer_processes_corrupt_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    CaptureStore(folder)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=write_many, args=(str(folder), index, PER_WRITER, barrier)) for index in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=240)
        assert process.exitcode == 0
    store = CaptureStore(folder, create=False)
    assert store.integrity() == "ok"
    ids = [row["request_id"] for row in store.rows("captures")]
    assert sorted(ids) == sorted(f"w{w}-{i:05d}" for w in (1, 2) for i in range(PER_WRITER))
    assert {row["request_id"] for row in store.rows("answers")} == set(ids)
    images = sorted(path for path in store.images_dir.rglob("*") if path.is_file())
    assert len(images) == 3 and not [path for path in images if path.name.startswith(".")]
    for row in store.rows("captures"):
        assert store.image_path(row["image_sha256"], row["image_format"]).is_file()


def test_kill_9_of_a_writer_loses_no_committed_record(tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    CaptureStore(folder)
    process = multiprocessing.get_context("spawn").Process(target=write_forever, args=(str(folder),))
    process.start()
    try:
        reader = CaptureStore(folder, create=False)
        deadline = time.monotonic() + 120
        while len(seen := {row["request_id"] for row in reader.rows("captures")}) < 50:
            assert time.monotonic() < deadline and process.is_alive(), "the writer did not get going"
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL
    store = CaptureStore(folder, create=False)
    assert store.integrity() == "ok"
    after = {row["request_id"] for row in store.rows("captures")}
    assert seen <= after
    assert {row["request_id"] for row in store.rows("answers")} == after
    for row in store.rows("captures"):
        assert store.image_path(row["image_sha256"], "png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store.write([capture("after-the-kill"), served("after-the-kill")])
    assert len(store.rows("captures")) == len(after) + 1
