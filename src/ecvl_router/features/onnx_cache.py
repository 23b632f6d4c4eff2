"""The encoders live routing runs on: ONNX Runtime by default, exported on first use into a cache folder.

:func:`serving_extractor` serves torch encoder settings through their ONNX export when ONNX Runtime is
installed. The export lives in ``<cache_dir>/<key>/``, the key a hash of the torch encoders' identities: the
first start exports the encoders, verifies the export against torch on :func:`~.onnx_export.probe_queries`
(cosine similarity of every embedding at least ``AUTO_MIN_COSINE``) and moves it into place; every later start
(and every other process) loads it without loading the torch encoders. Without ONNX Runtime, for encoders
that cannot be exported (bfloat16, int8) and when the export or its verification fails, the torch encoders
serve, with a log line saying why; ``engine="torch"`` always uses torch, ``engine="onnx"`` fails instead of
falling back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch loads with the encoders, not with the configuration naming the engine
    from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor

logger = logging.getLogger(__name__)

EncoderEngine = Literal["auto", "onnx", "torch"]
"""auto: ONNX Runtime when installed and the export verifies, else torch; onnx: ONNX Runtime or an error; torch: torch."""

AUTO_MIN_COSINE = 0.999
"""Lowest cosine similarity to torch that an automatic export may show on any probe query's embedding."""


def serving_extractor(
    settings: ExtractorSettings,
    *,
    engine: EncoderEngine = "auto",
    cache_dir: Path,
    identities: tuple[str, str] | None = None,
) -> FeatureExtractor:
    """The extractor to serve ``settings`` with (see the module docstring).

    ``identities`` (text, image), as a router bundle records them, find a cached export without loading the
    torch encoders; without them the torch encoders are loaded first. Settings naming an export (``onnx``)
    are loaded as they are. OnnxExportError when ``engine`` is ``onnx`` and the export cannot serve.
    """
    from ecvl_router.features.extractor import FeatureExtractor

    if settings.onnx is not None or engine == "torch":
        return FeatureExtractor.from_settings(settings)
    why_not = _why_not_exportable(settings)
    if why_not is None and identities is not None:
        cached = _load_cached(settings, cache_dir / export_key(*identities), identities)
        if cached is not None:
            return cached
    if why_not is not None:
        return _torch_instead(FeatureExtractor.from_settings(settings), why_not, engine)
    torch_extractor = FeatureExtractor.from_settings(settings)
    own = (torch_extractor.text_encoder.identity, torch_extractor.image_encoder.identity)
    folder = cache_dir / export_key(*own)
    cached = _load_cached(settings, folder, own)
    if cached is not None:
        torch_extractor.close()
        return cached
    try:
        onnx_extractor = _export_into(folder, torch_extractor, settings)
    except Exception as error:  # noqa: BLE001 - any failure of the exporter or of ONNX Runtime means: serve torch
        return _torch_instead(torch_extractor, f"the ONNX export failed ({type(error).__name__}: {error})", engine)
    if onnx_extractor is None:
        return _torch_instead(torch_extractor, "the ONNX export differs from torch on the probe queries", engine)
    torch_extractor.close()
    return onnx_extractor


def export_key(text_identity: str, image_identity: str) -> str:
    """The cache folder name of the export of these torch encoders."""
    from ecvl_router.features.onnx_encoders import EXPORT_FORMAT

    canonical = json.dumps([EXPORT_FORMAT, text_identity, image_identity])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _why_not_exportable(settings: ExtractorSettings) -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed (pip install 'ecvl-router[onnx]' for the faster ONNX Runtime encoders)"
    if settings.text_precision != "float32" or settings.image_precision != "float32":
        return "only float32 encoders are exported to ONNX Runtime"
    return None


def _torch_instead(extractor: FeatureExtractor, why: str, engine: EncoderEngine) -> FeatureExtractor:
    from ecvl_router.features.onnx_encoders import OnnxExportError

    if engine == "onnx":
        extractor.close()
        raise OnnxExportError(f"the encoders cannot run in ONNX Runtime: {why}")
    logger.warning("encoders run in torch: %s", why)
    return extractor


def _onnx_settings(settings: ExtractorSettings, folder: Path) -> ExtractorSettings:
    return type(settings)(onnx=folder, overlap=settings.overlap, branch_threads=settings.branch_threads)


def _load_cached(settings: ExtractorSettings, folder: Path, identities: tuple[str, str]) -> FeatureExtractor | None:
    """The verified export in ``folder`` when it stands in for exactly ``identities``; None when there is none."""
    from ecvl_router.features.extractor import FeatureExtractor
    from ecvl_router.features.onnx_encoders import OnnxExportError

    if not folder.is_dir():
        return None
    try:
        _check_sources(folder, identities)
        extractor = FeatureExtractor.from_settings(_onnx_settings(settings, folder))
    except (OnnxExportError, OSError, KeyError, TypeError) as error:
        logger.warning("ignoring the cached ONNX export %s (%s); exporting again", folder, error)
        return None
    logger.info("encoders run in ONNX Runtime: %s", folder)
    return extractor


def _check_sources(folder: Path, identities: tuple[str, str]) -> None:
    """OnnxExportError unless ``folder`` holds a verified export of exactly the encoders ``identities`` name."""
    from ecvl_router.features.onnx_encoders import OnnxExportError, read_export

    record = read_export(folder)
    sources = (record["text"]["source_identity"], record["image"]["source_identity"])
    if sources != tuple(identities):
        raise OnnxExportError(f"{folder}: exported from {sources}, not from {tuple(identities)}")


def _export_into(folder: Path, torch_extractor: FeatureExtractor, settings: ExtractorSettings) -> FeatureExtractor | None:
    """Export ``torch_extractor`` into ``folder`` through a private partial folder, verified on the probe queries;
    None (nothing written) when the verification fails. Processes exporting at once each write their own copy,
    and the first moved into place is kept."""
    from ecvl_router.features.extractor import FeatureExtractor
    from ecvl_router.features.onnx_export import export_encoders, exported_extractor, mark_verified, probe_agreement

    logger.info("exporting the encoders to ONNX Runtime into %s (once) …", folder)
    identities = (torch_extractor.text_encoder.identity, torch_extractor.image_encoder.identity)
    partial = folder.with_name(f"{folder.name}.partial-{uuid.uuid4().hex}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        record = export_encoders(torch_extractor, partial, settings=settings.model_dump(mode="json"))
        with exported_extractor(partial, record, settings.branch_threads) as candidate:
            verification = probe_agreement(torch_extractor, candidate)
        passed = min(verification["text_cosine_min"], verification["image_cosine_min"]) >= AUTO_MIN_COSINE
        verification.update(passed=passed, min_cosine=AUTO_MIN_COSINE, on="probe queries")
        if not passed:
            logger.warning("the ONNX export's embeddings on the probe queries: %s", verification)
            return None
        mark_verified(partial, verification)
        _move_into_place(partial, folder, identities)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return FeatureExtractor.from_settings(_onnx_settings(settings, folder))


def _move_into_place(partial: Path, folder: Path, identities: tuple[str, str]) -> None:
    """``partial`` renamed to ``folder``, unless another process's valid export got there first (then that one stays)."""
    from ecvl_router.features.onnx_encoders import OnnxExportError

    if folder.is_dir():
        try:
            _check_sources(folder, identities)
            return
        except (OnnxExportError, KeyError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)  # the broken copy that was ignored
    try:
        partial.rename(folder)
    except OSError:  # another process moved its copy into place in the meantime
        _check_sources(folder, identities)
