"""Text and image encoders running in ONNX Runtime, loaded from a folder written by ``ecvl-router export-encoders``.

The folder holds ``text.onnx`` and ``image.onnx`` (pooling included), the tokenizer (``tokenizer/``), the
image preprocessing (its settings, or a Hugging Face processor in ``processor/``) and ``export.json``: what
was exported from which torch encoders, whether it was quantised, and the verification against them. Each
encoder's ``identity`` names the export (``<torch identity>+onnx`` or ``+onnx-int8``), and
``source_identity`` the torch encoder it was verified to stand in for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ecvl_router.features.image import encode_images, processor_pixels
from ecvl_router.features.imaging import normalised_batch
from ecvl_router.features.text import tokenize

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1


class OnnxExportError(ValueError):
    """A folder that is not a complete, verified encoder export."""


def read_export(folder: Path) -> dict[str, Any]:
    """The ``export.json`` of an export folder, checked to be complete and verified."""
    path = Path(folder) / EXPORT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxExportError(f"{path}: not an encoder export ({exc}); write one with `ecvl-router export-encoders`") from None
    if record.get("format") != EXPORT_FORMAT or not {"text", "image"} <= set(record):
        raise OnnxExportError(f"{path}: unknown export format; export the encoders again")
    if not (record.get("verification") or {}).get("passed"):
        raise OnnxExportError(f"{path}: the export was not verified against its torch encoders; export them again")
    return record


def session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxTextEncoder:
    """The exported text encoder: the torch encoder's tokenizer, then one ONNX Runtime call per batch."""

    def __init__(self, folder: Path, record: dict[str, Any], threads: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        self.session = session(folder / record["file"], threads)
        self.inputs: list[str] = record["inputs"]
        self.max_length: int = record["max_length"]
        self.dim: int = record["dim"]
        self.identity: str = record["identity"]
        self.source_identity: str = record["source_identity"]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dim), float32."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            tokens = tokenize(self.tokenizer, batch, self.max_length, "np")
            feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in self.inputs}
            out[start : start + len(batch)] = self.session.run(None, feed)[0]
        return out


class OnnxImageEncoder:
    """The exported image encoder: the torch encoder's preprocessing, then one ONNX Runtime call per batch."""

    def __init__(self, folder: Path, record: dict[str, Any], threads: int) -> None:
        self.preprocessing: dict[str, Any] = record["preprocess"]
        self.processor = None
        if self.preprocessing["kind"] == "processor":
            from transformers import AutoImageProcessor

            self.processor = AutoImageProcessor.from_pretrained(folder / "processor")
        self.session = session(folder / record["file"], threads)
        self.dim: int = record["dim"]
        self.identity: str = record["identity"]
        self.source_identity: str = record["source_identity"]

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Network input of ``images``, exactly as the torch encoder prepares it."""
        if self.processor is not None:
            return processor_pixels(self.processor, images)
        spec = self.preprocessing
        return normalised_batch(images, spec["size"], spec["mean"], spec["std"])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Features of a prepared batch, shape (n, dim), float32."""
        return self.session.run(None, {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Features of ``images``, shape (len(images), dim), float32."""
        return encode_images(self, images, batch_size)


def load_onnx_encoders(folder: Path, threads: int = 1) -> tuple[OnnxTextEncoder, OnnxImageEncoder]:
    """The text and image encoders of a verified export folder (OnnxExportError otherwise)."""
    folder = Path(folder)
    record = read_export(folder)
    text, image = OnnxTextEncoder(folder, record["text"], threads), OnnxImageEncoder(folder, record["image"], threads)
    logger.info("ONNX encoders %s and %s loaded from %s", text.identity, image.identity, folder)
    return text, image
