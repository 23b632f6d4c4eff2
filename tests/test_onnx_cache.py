"""The encoders a served router runs on: their ONNX export by default (exported on first start into a cache folder,
verified against torch on probe queries, reused afterwards), torch when ONNX Runtime is missing, when the export
fails or its verification does, or when the configuration says so. Tiny encoders built from configs (offline)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import yaml

import ecvl_router.features.onnx_cache as onnx_cache
import ecvl_router.features.onnx_export as onnx_export
from ecvl_router.features.extractor import ExtractorSettings
from ecvl_router.features.onnx_encoders import EXPORT_FILE, OnnxExportError
from ecvl_router.learning.bundle import BundleError
from ecvl_router.serve import QueryRouter
from ecvl_router.serve.config import EncoderRuntimePolicy, example_config, load_gateway_config
from tests.serve_support import demo_data, tiny_bundle  # noqa: F401

QUESTIONS = ("how many are there ?", "what is the colour of the value .")


def load(bundle: Path, cache: Path, engine: str = "auto") -> QueryRouter:
    return QueryRouter.from_bundle(bundle, encoder_runtime=EncoderRuntimePolicy(engine=engine, cache_dir=cache))


def recorded_identities(bundle: Path) -> tuple[str, str]:
    features = json.loads((bundle / "manifest.json").read_text())["settings"]["features"]
    return features["text_encoder"], features["image_encoder"]


def exports(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.exists() else []


def test_by_default_the_router_runs_on_a_verified_export_made_on_first_start(tiny_bundle: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "onnx"
    on_torch = load(tiny_bundle, cache, "torch")
    first = load(tiny_bundle, cache)
    try:
        text, image = recorded_identities(tiny_bundle)
        assert first.extractor.text_encoder.identity == text + "+onnx" and first.extractor.image_encoder.identity == image + "+onnx"
        [folder] = exports(cache)
        assert folder.name == onnx_cache.export_key(text, image)
        check = json.loads((folder / EXPORT_FILE).read_text())["verification"]
        assert check["passed"] and check["on"] == "probe queries" and check["queries"] == len(onnx_export.probe_queries()[0])
        assert min(check["text_cosine_min"], check["image_cosine_min"]) >= onnx_cache.AUTO_MIN_COSINE
        for question in QUESTIONS:
            assert first.decide(question, None, "quality").p == pytest.approx(on_torch.decide(question, None, "quality").p, abs=1e-4)
    finally:
        first.close()
        on_torch.close()

    def no_second_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(onnx_export, "export_encoders", no_second_export)
    again = load(tiny_bundle, cache)
    try:
        assert again.extractor.text_encoder.identity.endswith("+onnx") and exports(cache) == [folder]
    finally:
        again.close()


def test_without_onnxruntime_the_torch_encoders_serve_with_a_warning(tiny_bundle: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="ecvl_router.features.onnx_cache"):
        router = load(tiny_bundle, tmp_path / "onnx")
    try:
        assert router.extractor.text_encoder.identity == recorded_identities(tiny_bundle)[0]
        assert "onnxruntime is not installed" in caplog.text and exports(tmp_path / "onnx") == []
    finally:
        router.close()
    with pytest.raises(OnnxExportError, match="onnxruntime is not installed"):
        load(tiny_bundle, tmp_path / "onnx", "onnx")


def test_a_failed_verification_serves_torch_and_caches_nothing(tiny_bundle: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(onnx_cache, "AUTO_MIN_COSINE", 1.5)  # no export can reach it
    cache = tmp_path / "onnx"
    with caplog.at_level(logging.WARNING, logger="ecvl_router.features.onnx_cache"):
        router = load(tiny_bundle, cache)
    try:
        assert router.extractor.text_encoder.identity == recorded_identities(tiny_bundle)[0]
        assert "differs from torch on the probe queries" in caplog.text
        assert exports(cache) == []  # neither an export nor a partial folder is left behind
    finally:
        router.close()
    with pytest.raises(OnnxExportError, match="differs from torch"):
        load(tiny_bundle, cache, "onnx")


def test_an_export_that_raises_serves_torch(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_export, "export_encoders", broken)
    with caplog.at_level(logging.WARNING, logger="ecvl_router.features.onnx_cache"):
        router = load(tiny_bundle, tmp_path / "onnx")
    try:
        assert not router.extractor.text_encoder.identity.endswith("+onnx")
        assert "the ONNX export failed (RuntimeError: unsupported operator)" in caplog.text
    finally:
        router.close()


def test_forced_torch_never_exports(tiny_bundle: Path, tmp_path: Path) -> None:
    router = load(tiny_bundle, tmp_path / "onnx", "torch")
    try:
        assert router.extractor.text_encoder.identity == recorded_identities(tiny_bundle)[0]
        assert not (tmp_path / "onnx").exists()
    finally:
        router.close()


def test_a_broken_cached_export_is_replaced(tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "onnx"
    broken = cache / onnx_cache.export_key(*recorded_identities(tiny_bundle))
    broken.mkdir(parents=True)
    (broken / EXPORT_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="ecvl_router.features.onnx_cache"):
        router = load(tiny_bundle, cache)
    try:
        assert router.extractor.text_encoder.identity.endswith("+onnx") and "ignoring the cached ONNX export" in caplog.text
        assert json.loads((broken / EXPORT_FILE).read_text())["verification"]["passed"]
    finally:
        router.close()


def test_the_gateway_configuration_names_the_engine(tmp_path: Path) -> None:
    document = yaml.safe_load(example_config())
    assert document["encoder_runtime"] == {"engine": "auto", "cache_dir": None}
    document["encoder_runtime"] = {"engine": "torch", "cache_dir": "exports"}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    config = load_gateway_config(path)
    assert config.encoder_runtime.engine == "torch" and config.encoder_runtime.cache_dir == tmp_path / "exports"
    document["encoder_runtime"] = {"engine": "tensorrt"}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match="encoder_runtime.engine"):
        load_gateway_config(path)


def test_other_encoders_are_refused_even_with_the_bundles_export_cached(tiny_bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    load(tiny_bundle, cache).close()
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    other = ExtractorSettings(**{**manifest["settings"]["extractor"], "text_max_length": 16})
    with pytest.raises(BundleError, match="trained on the text encoder"):
        QueryRouter.from_bundle(tiny_bundle, encoders=other, encoder_runtime=EncoderRuntimePolicy(cache_dir=cache))
