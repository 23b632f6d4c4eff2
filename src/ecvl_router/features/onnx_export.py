"""Exporting the torch encoders to ONNX (optionally with dynamic int8 quantisation), and comparing encoders.

:func:`export_encoders` writes the folder :mod:`ecvl_router.features.onnx_encoders` loads; the export only
becomes loadable once :func:`mark_verified` records a passed verification (``ecvl-router export-encoders``
verifies the embeddings with :func:`embedding_agreement`, and a trained router's decisions, before that).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.features.features import QueryFeatures
from ecvl_router.features.onnx_encoders import EXPORT_FILE, EXPORT_FORMAT
from ecvl_router.manifest import write_json_atomic

logger = logging.getLogger(__name__)

_OPSET = 17
_QUANTISED_OPS = ["MatMul", "Gemm"]  # convolutions stay float32: ONNX Runtime's ConvInteger is slow on CPU


def export_encoders(extractor: FeatureExtractor, out: Path, *, int8: bool = False, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``extractor``'s encoders to ``out`` as ONNX (pooling included) with their tokenizer and preprocessing.

    ``int8`` quantises the weights of matrix multiplications dynamically (to int8). Returns the export record
    (``export.json``), not yet verified.
    """
    text, image = extractor.text_encoder, extractor.image_encoder
    for encoder in (text, image):
        if getattr(encoder, "precision", "float32") != "float32" or not hasattr(encoder, "pooled_module"):
            raise ValueError(f"encoder {encoder.identity}: only float32 torch encoders can be exported to ONNX")
    out.mkdir(parents=True, exist_ok=True)
    suffix = "+onnx-int8" if int8 else "+onnx"
    module = text.pooled_module().eval()
    tokens = text.tokenize(["a probe question", "a second and somewhat longer probe question"], "pt")
    with torch.inference_mode():
        _export(module, tuple(tokens[name] for name in module.names), out / "text.onnx", module.names, {0: "batch", 1: "sequence"}, int8)
    text.tokenizer.save_pretrained(out / "tokenizer")
    pixels = torch.from_numpy(np.ascontiguousarray(image.prepare([Image.new("RGB", (64, 48), (90, 120, 150))] * 2)))
    with torch.inference_mode():
        _export(image.pooled_module().eval(), (pixels,), out / "image.onnx", ["pixels"], {0: "batch"}, int8)
    record = {
        "format": EXPORT_FORMAT,
        "quantized": "int8" if int8 else None,
        "settings": settings or {},
        "text": {"file": "text.onnx", "identity": text.identity + suffix, "source_identity": text.identity,
                 "inputs": module.names, "max_length": text.max_length, "dim": text.dim},
        "image": {"file": "image.onnx", "identity": image.identity + suffix, "source_identity": image.identity,
                  "dim": image.dim, "preprocess": image.preprocessing(out)},
        "verification": None,
    }
    write_json_atomic(out / EXPORT_FILE, record)
    return record


def _export(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, names: list[str], axes: dict[int, str], int8: bool) -> None:
    with warnings.catch_warnings():  # the tracer's notes on shape checks: the verification tests the export instead
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, inputs, str(path), input_names=names, output_names=["embedding"], opset_version=_OPSET, dynamo=False,
            dynamic_axes={**{name: axes for name in names}, "embedding": {0: "batch"}},
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        float_copy = path.with_name(path.stem + "-float32.onnx")
        path.replace(float_copy)
        logging.disable(logging.WARNING)  # its advice to pre-process the model (shape inference) does not change the result
        try:
            quantize_dynamic(str(float_copy), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=_QUANTISED_OPS)
        finally:
            logging.disable(logging.NOTSET)
        float_copy.unlink()


def exported_extractor(out: Path, record: dict[str, Any], threads: int) -> FeatureExtractor:
    """The encoders of an export just written to ``out`` (``record``: its export.json), loaded to verify it."""
    from ecvl_router.features.onnx_encoders import OnnxImageEncoder, OnnxTextEncoder

    return FeatureExtractor(OnnxTextEncoder(out, record["text"], threads), OnnxImageEncoder(out, record["image"], threads))  # type: ignore[arg-type]


def mark_verified(out: Path, verification: dict[str, Any]) -> None:
    """Record the verification in ``export.json`` (a passed one makes the export loadable) and write the
    ``encoders.yaml`` that names the export."""
    record = json.loads((out / EXPORT_FILE).read_text(encoding="utf-8"))
    record["verification"] = verification
    write_json_atomic(out / EXPORT_FILE, record)
    (out / "encoders.yaml").write_text("# ONNX encoders: use with --encoders, or `encoders:` in the gateway configuration\nonnx: .\n", encoding="utf-8")


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (1 where both are zero)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)


def embedding_agreement(reference: QueryFeatures, candidate: QueryFeatures) -> dict[str, float]:
    """Minimum and mean cosine similarity of two extractors' text and image embeddings of the same queries."""
    text = row_cosines(reference.text, candidate.text)
    image = row_cosines(reference.image[reference.has_image], candidate.image[reference.has_image])
    return {
        "queries": len(reference),
        "images": int(reference.has_image.sum()),
        "text_cosine_min": float(text.min()),
        "text_cosine_mean": float(text.mean()),
        "image_cosine_min": float(image.min()) if len(image) else 1.0,
        "image_cosine_mean": float(image.mean()) if len(image) else 1.0,
    }


def probe_queries() -> tuple[list[str], list[Image.Image | None]]:
    """Synthetic queries that exercise what an export can get wrong: questions from one word to about a hundred tokens
    (dynamic sequence length, padding in a batch), symbols and other scripts, and images of several sizes, aspect
    ratios and modes."""
    rng = np.random.default_rng(0)
    long_question = " ".join(["which of the four coloured bars shows the largest value"] * 6)
    questions = [
        "Why?",
        "In the chart on the left, which of the four coloured bars shows the largest value for the year 2019, and by "
        "how many units does it exceed the smallest bar in that group?",
        "Combien de triangles voit-on ? ∠ABC = 30°, √2 ≈ 1.41, 三角形\nAnswer with a number.",
        long_question,
        "How many red circles are there?",
        "Read the text in the image.",
        "What is 2 + 2?",
    ]

    def scene(width: int, height: int) -> Image.Image:
        image = Image.fromarray(rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(4, 40))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, size=3)))
        draw.text((4, 4), "2019: 42", fill=(0, 0, 0))
        return image

    images: list[Image.Image | None] = [
        scene(448, 448),
        scene(640, 360),
        scene(200, 500).convert("L"),
        scene(300, 300).convert("RGBA"),
        scene(96, 64).convert("P"),
        scene(1000, 120),
        None,
    ]
    return questions, images


def probe_agreement(reference: FeatureExtractor, candidate: FeatureExtractor) -> dict[str, float]:
    """:func:`embedding_agreement` of two extractors on :func:`probe_queries`, all in one batch and one by one
    (the lower figure of the two for each entry)."""
    questions, images = probe_queries()
    ids = [f"probe-{row}" for row in range(len(questions))]
    together = embedding_agreement(reference.extract(questions, images, ids), candidate.extract(questions, images, ids))
    alone = [embedding_agreement(reference.extract_live([q], [i]), candidate.extract_live([q], [i])) for q, i in zip(questions, images)]
    return {
        key: (value if key in ("queries", "images") else min([value, *(part[key] for part in alone)]))
        for key, value in together.items()
    }
