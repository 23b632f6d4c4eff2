"""`ecvl-router export-encoders` on tiny encoders built from configs (offline): export, verification, loading,
and the rule that a router is only served with its own encoders or their verified export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ecvl_router.learning.bundle import BundleError
from ecvl_router.cli import app
from ecvl_router.config import ConfigError
from ecvl_router.data import load_rsd
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.onnx_encoders import EXPORT_FILE, OnnxExportError, load_onnx_encoders
from ecvl_router.serve import QueryRouter
from tests.serve_support import demo_data, tiny_bundle  # noqa: F401


def export(bundle: Path, data: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["export-encoders", "--out", str(out), "--data", str(data), "--bundle", str(bundle), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / EXPORT_FILE).read_text())


@pytest.fixture(scope="module")
def exported(tiny_bundle: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "encoders"
    export(tiny_bundle, demo_data, out)
    return out


def test_the_export_is_verified_against_torch_on_the_test_split(exported: Path, tiny_bundle: Path) -> None:
    record = json.loads((exported / EXPORT_FILE).read_text())
    check = record["verification"]
    assert check["passed"] and check["queries"] == len(json.loads((tiny_bundle / "split.json").read_text())["test"])
    assert check["text_cosine_min"] >= 0.99 and check["image_cosine_min"] >= 0.99
    assert set(check["decision_agreement"]) == {"quality", "speed", "privacy"}
    assert min(check["decision_agreement"].values()) >= 0.99
    for kind in ("text", "image"):
        assert record[kind]["identity"] == record[kind]["source_identity"] + "+onnx"
        assert (exported / record[kind]["file"]).is_file()
    assert yaml.safe_load((exported / "encoders.yaml").read_text()) == {"onnx": "."}


def test_onnx_embeddings_match_torch_and_carry_their_own_identity(exported: Path, tiny_bundle: Path, demo_data: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    torch_extractor = FeatureExtractor.from_settings(ExtractorSettings(**manifest["settings"]["extractor"]))
    onnx_extractor = FeatureExtractor.from_settings(ExtractorSettings.from_yaml(exported / "encoders.yaml"))
    rsd = load_rsd(demo_data)
    items = rsd.items.head(8)
    questions, images = items["question"].tolist(), [rsd.image_path(image) for image in items["image"]]
    ours, theirs = torch_extractor.extract_live(questions, images), onnx_extractor.extract_live(questions, images)
    np.testing.assert_allclose(theirs.text, ours.text, atol=1e-4)
    np.testing.assert_allclose(theirs.image, ours.image, atol=1e-4)
    assert onnx_extractor.text_encoder.identity != torch_extractor.text_encoder.identity
    assert onnx_extractor.text_encoder.source_identity == torch_extractor.text_encoder.identity


def test_a_router_is_served_with_its_verified_export(exported: Path, tiny_bundle: Path) -> None:
    on_torch = QueryRouter.from_bundle(tiny_bundle)
    on_onnx = QueryRouter.from_bundle(tiny_bundle, encoders=ExtractorSettings.from_yaml(exported / "encoders.yaml"))
    try:
        for question in ("how many are there ?", "what is the colour of the value ."):
            assert on_onnx.decide(question, None, "quality").p == pytest.approx(on_torch.decide(question, None, "quality").p, abs=1e-4)
    finally:
        on_torch.close()
        on_onnx.close()


def test_a_router_refuses_other_encoders(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    other = ExtractorSettings(**{**manifest["settings"]["extractor"], "text_max_length": 16})
    with pytest.raises(BundleError, match="trained on the text encoder"):
        QueryRouter.from_bundle(tiny_bundle, encoders=other)


def test_an_unverified_export_is_refused(exported: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(exported, tmp_path / "copy")
    record = json.loads((copy / EXPORT_FILE).read_text())
    record["verification"]["passed"] = False
    (copy / EXPORT_FILE).write_text(json.dumps(record))
    with pytest.raises(OnnxExportError, match="not verified"):
        load_onnx_encoders(copy)


def test_an_int8_export_is_verified_too(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    record = export(tiny_bundle, demo_data, tmp_path / "int8", "--int8", "--min-cosine", "0.9", "--min-agreement", "0.9")
    assert record["quantized"] == "int8" and record["text"]["identity"].endswith("+onnx-int8")
    assert record["verification"]["text_cosine_min"] >= 0.9


def test_a_failed_verification_writes_nothing(tiny_bundle: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ecvl_router.features.onnx_export as onnx_export

    measured = onnx_export.embedding_agreement
    monkeypatch.setattr(onnx_export, "embedding_agreement", lambda a, b: {**measured(a, b), "image_cosine_min": 0.5})
    out = tmp_path / "failed"
    result = CliRunner().invoke(app, ["export-encoders", "--out", str(out), "--data", str(demo_data), "--bundle", str(tiny_bundle)])
    assert result.exit_code == 1 and "nothing written" in " ".join(result.output.split())
    assert not out.exists() and not out.with_name("failed.partial").exists()


def test_settings_naming_an_export_and_torch_encoders_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "encoders.yaml"
    path.write_text(yaml.safe_dump({"onnx": "exported", "text_model": "other"}))
    with pytest.raises(ConfigError) as refused:
        ExtractorSettings.from_yaml(path)
    assert str(path) in str(refused.value) and "onnx: the export fixes the encoders" in str(refused.value)
    assert "remove text_model" in str(refused.value)
