"""From a capture folder (``ecvl_router.capture_store``) to a collection folder that ``ecvl-router judge`` scores.

Each captured request becomes an item: its question and image, no reference answer, source ``capture``
(``--source``), and a group shared by the captured queries about the same image (:func:`capture_group`), so
that ``retrain``'s folds and every split keep them on one side. Each of its answers, the one the client got and the other backend's (shadow), becomes a
collection record as ``collect`` writes them, with its latency and token counts (estimated from words where
the backend reported none), so ``judge`` scores them with the same rubric and settings as collected answers.
A failed shadow call becomes a failed record, which ``judge`` counts and leaves out. Client feedback becomes
human ratings (rater ``feedback``) in ``human-ratings.csv``, the CSV ``ecvl-router agreement`` reads.

An empty ``responses.jsonl`` is written when there is none yet, so the folder is a valid dataset (items and
images, no scores) before it is judged. Running the conversion again adds what was captured since and
rewrites the records and ratings whole; judged responses stay until ``judge`` runs again.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecvl_router.capture_store import CaptureStore, CaptureStoreError
from ecvl_router.collect.benchmarks import BenchmarkItem
from ecvl_router.collect.client import estimate_tokens
from ecvl_router.collect.workspace import CollectionDir, write_jsonl_atomic
from ecvl_router.data import schema
from ecvl_router.manifest import build_manifest, write_json_atomic

HUMAN_RATINGS_FILE = "human-ratings.csv"
FEEDBACK_RATER = "feedback"
RATING_COLUMNS = ("item_id", "model", "rater", "score", "comment", "given_at")
DEFAULT_SOURCE = "capture"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CaptureReport:
    """What a conversion wrote: items, answers by role, failed and missing shadow answers, human ratings."""

    items: int
    served: int
    shadow: int
    shadow_failed: int
    without_shadow: int
    ratings: int


def dataset_from_capture(capture: Path, out: Path, *, source: str = DEFAULT_SOURCE, name: str | None = None,
                         on_progress: Progress | None = None) -> CaptureReport:
    """Write (or bring up to date) the collection folder ``out`` from the capture folder ``capture``.

    Raises CaptureStoreError when ``capture`` is not a capture folder or an image it names is missing, and
    BenchmarkError when an item already in ``out`` differs from its capture.
    """
    store = CaptureStore(capture, create=False)
    captures, answers, feedback = store.rows("captures"), store.rows("answers"), store.rows("feedback")
    workspace = CollectionDir(out)
    workspace.root.mkdir(parents=True, exist_ok=True)
    info_path = workspace.root / schema.DATASET_FILE
    if not info_path.is_file():
        low, high = store.scale() or (1, 10)
        write_json_atomic(info_path, {"name": name or workspace.root.resolve().name, "score_min": low, "score_max": high,
                                      "description": f"captured by the ecvl-router gateway in {store.folder}; not judged yet"})
    items = workspace.add_items(_items(store, captures, source, on_progress), dataset_name=name or workspace.root.name)
    images = {row["request_id"]: row["image_sha256"] is not None for row in captures}
    questions = {row["request_id"]: row["question"] for row in captures}
    workspace.raw_dir.mkdir(exist_ok=True)
    write_jsonl_atomic(workspace.results_path(None), [_result(row, questions[row["request_id"]], images[row["request_id"]]) for row in answers])
    served = {row["request_id"]: row["model"] for row in answers if row["role"] == "served"}
    _write_ratings(workspace.root / HUMAN_RATINGS_FILE, feedback, served)
    if not (workspace.root / schema.RESPONSES_JSONL).is_file():
        write_jsonl_atomic(workspace.root / schema.RESPONSES_JSONL, [])
    shadows = [row for row in answers if row["role"] == "shadow"]
    report = CaptureReport(
        items=len(items),
        served=len(served),
        shadow=sum(row["ok"] for row in shadows),
        shadow_failed=sum(not row["ok"] for row in shadows),
        without_shadow=len(captures) - len(shadows),
        ratings=len(feedback),
    )
    _write_manifest(workspace, store, source, report)
    return report


def capture_group(row: dict[str, Any]) -> str | None:
    """The group of a captured query: the queries about one image (by its content hash) belong together; a query
    without an image is a group of its own (the gateway captures only a conversation's first turn)."""
    return f"image:{row['image_sha256']}" if row["image_sha256"] is not None else None


def _items(store: CaptureStore, captures: list[dict[str, Any]], source: str, on_progress: Progress | None) -> Iterator[BenchmarkItem]:
    for done, row in enumerate(captures, start=1):
        image = None
        if row["image_sha256"] is not None:
            image = store.image_path(row["image_sha256"], row["image_format"])
            if not image.is_file():
                raise CaptureStoreError(f"{store.path}: capture {row['request_id']}: its image {image} is missing")
        yield BenchmarkItem(row["request_id"], source, row["question"], None, image, capture_group(row))
        if on_progress is not None:
            on_progress(done, len(captures))


def _result(answer: dict[str, Any], question: str, image_sent: bool) -> dict[str, Any]:
    """An answer as ``collect`` records one (``role`` and ``route`` added: served or shadow, edge or cloud)."""
    base = {"item_id": answer["request_id"], "model": answer["model"], "model_id": answer["model_id"] or answer["model"],
            "role": answer["role"], "route": answer["route"], "attempts": 1, "finished_at": answer["created_at"]}
    if not answer["ok"]:
        return {**base, "ok": False, "error_kind": answer["error_kind"], "error_message": answer["error_message"]}
    input_tokens, output_tokens = answer["input_tokens"], answer["output_tokens"]
    return {
        **base,
        "ok": True,
        "response": answer["text"],
        "latency_s": answer["latency_s"],
        "ttft_s": None,
        "input_tokens": input_tokens if input_tokens is not None else estimate_tokens(question),
        "output_tokens": output_tokens if output_tokens is not None else estimate_tokens(answer["text"]),
        "tokens_estimated": input_tokens is None or output_tokens is None,
        "image_sent": image_sent,
    }


def _write_ratings(path: Path, feedback: list[dict[str, Any]], served: dict[str, str]) -> None:
    """The feedback as human ratings of the answers the clients got, written through a temporary file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RATING_COLUMNS)
    for row in feedback:
        writer.writerow([row["request_id"], served[row["request_id"]], FEEDBACK_RATER, f"{row['score']:g}", row["comment"] or "", row["created_at"]])
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(partial, path)


def _write_manifest(workspace: CollectionDir, store: CaptureStore, source: str, report: CaptureReport) -> None:
    manifest = build_manifest("data from-capture", inputs={"capture": str(store.folder.resolve())}, settings={"source": source},
                              counts=asdict(report))
    write_json_atomic(workspace.collect_manifest_path, manifest)
