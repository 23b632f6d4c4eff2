"""Shared fixtures: a tiny, hand-written Response Score Dataset in the interchange format, and a private cache folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image


def write_tiny_rsd(root: Path, *, score_max: float = 10) -> Path:
    """Three items (two with images, one text-only), two models; model 'b' lacks item q3."""
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (32, 24), (200, 10, 10)).save(root / "images" / "q1.png")
    Image.new("L", (16, 16), 128).save(root / "images" / "q2.png")
    (root / "dataset.json").write_text(
        json.dumps({"name": "tiny", "score_min": 1, "score_max": score_max, "description": "hand-written test data"})
    )
    items = [
        {"item_id": "q1", "source": "charts", "question": "What is the red bar's value?", "image": "images/q1.png", "reference": "7"},
        {"item_id": "q2", "source": "ocr", "question": "Read the text.", "image": "images/q2.png", "reference": None},
        {"item_id": "q3", "source": "charts", "question": "What is 2+2?", "image": None, "reference": "4"},
    ]
    responses = [
        {"item_id": "q1", "model": "a", "response": "7", "score": 9, "latency_s": 0.5, "output_tokens": 1},
        {"item_id": "q1", "model": "b", "response": "seven", "score": 8, "latency_s": 2.5, "output_tokens": 2, "rationale": "ok"},
        {"item_id": "q2", "model": "a", "response": "?", "score": 2, "latency_s": 0.4, "output_tokens": None},
        {"item_id": "q2", "model": "b", "response": "HELLO", "score": 7.5, "latency_s": 3.0, "output_tokens": 3, "ttft_s": 0.2},
        {"item_id": "q3", "model": "a", "response": "4", "score": 10, "latency_s": 0.1, "output_tokens": 1, "input_tokens": 9},
    ]
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (root / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    return root


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$ECVL_ROUTER_CACHE`` in a temporary folder for the whole session: what the tests cache (embeddings, the
    encoders' ONNX exports) never lands in the user's cache, and every session starts empty."""
    folder = tmp_path_factory.mktemp("ecvl-router-cache")
    before = os.environ.get("ECVL_ROUTER_CACHE")
    os.environ["ECVL_ROUTER_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("ECVL_ROUTER_CACHE", None)
    else:
        os.environ["ECVL_ROUTER_CACHE"] = before


@pytest.fixture
def tiny_rsd(tmp_path: Path) -> Path:
    return write_tiny_rsd(tmp_path / "tiny")
