"""FeatureExtractor and the embedding cache: alignment, text-only queries, nothing computed twice,
interruption safety, and live extraction equal to batch extraction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecvl_router.features import STAT_NAMES, EmbeddingCache, QueryFeatures
from ecvl_router.features.extractor import FeatureExtractor, extract_for_items
from ecvl_router.features.statistics import query_statistics


class CountingTextEncoder:
    """Deterministic stand-in: a vector derived from the text's hash; counts encoded texts."""

    dim = 8
    identity = "counting-text@0"

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.encoded += list(texts)
        return np.stack([_pseudo_vector(text.encode(), self.dim) for text in texts])


class CountingImageEncoder:
    """Vector = mean colour and size of the image; counts encoded images; may fail on demand."""

    dim = 5
    identity = "counting-image@0"

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.encoded = 0
        self.fail_on_call = fail_on_call

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        colours = [np.asarray(image.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) for image in images]
        return np.asarray([[*colour, *image.size] for colour, image in zip(colours, images)], dtype=np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        self.encoded += len(batch)
        return batch.copy()

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return self.embed(self.prepare(images))


def _pseudo_vector(data: bytes, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(data).digest()[:4], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[list[str], list[str], list[Path | None]]:
    """Seven items: five image files (one duplicated content), two text-only; one repeated question."""
    folder = tmp_path / "images"
    folder.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 0), (90, 90, 90)]
    paths = []
    for i, colour in enumerate(colours):
        path = folder / f"{i}.png"
        Image.new("RGB", (20 + i, 10), colour).save(path)
        paths.append(path)
    paths[3] = folder / "3.png"
    Image.new("RGB", (20, 10), (255, 0, 0)).save(paths[3])  # same bytes as 0.png
    items = [f"item{i}" for i in range(7)]
    questions = ["What colour?", "How wide?", "What colour?", "Same as first?", "Gray?", "Text only 1", "Text only 2"]
    return items, questions, [*paths, None, None]


def make_extractor(**image_options: int) -> FeatureExtractor:
    return FeatureExtractor(CountingTextEncoder(), CountingImageEncoder(**image_options), overlap=False)  # type: ignore[arg-type]


def test_extract_aligns_rows_and_handles_text_only_queries(dataset) -> None:
    items, questions, images = dataset
    extractor = make_extractor()
    features = extractor.extract(questions, images, items, batch_size=3)
    assert isinstance(features, QueryFeatures) and list(features.item_ids) == items
    assert features.text.shape == (7, 8) and features.image.shape == (7, 5)
    assert features.stats.shape == (7, len(STAT_NAMES))
    assert features.has_image.tolist() == [True] * 5 + [False] * 2
    assert not features.image[5:].any()  # no image: zeros
    np.testing.assert_array_equal(features.text[0], features.text[2])  # same question, same vector
    np.testing.assert_allclose(features.image[1], [0, 255, 0, 21, 10])
    for row, (question, image) in enumerate(zip(questions, images)):
        expected = query_statistics(question, None if image is None else Image.open(image))
        np.testing.assert_array_equal(features.stats[row], expected)
    # duplicates are computed once even without a cache: 6 distinct questions, 4 distinct images
    assert len(extractor.text_encoder.encoded) == 6 and extractor.image_encoder.encoded == 4


def test_cache_computes_nothing_twice(dataset, tmp_path: Path) -> None:
    items, questions, images = dataset
    progress: list[tuple[int, int]] = []
    first = extract_for_items(
        items, questions, images, make_extractor(), tmp_path / "cache",
        progress=lambda done, total: progress.append((done, total)), batch_size=3,
    )
    assert progress == [(3, 7), (6, 7), (7, 7)]
    again = make_extractor()
    second = extract_for_items(items, questions, images, again, tmp_path / "cache", batch_size=3)
    assert again.text_encoder.encoded == [] and again.image_encoder.calls == 0
    for name in ("text", "image", "stats", "has_image"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    # one new item: only its question and image are computed
    new_image = tmp_path / "new.png"
    Image.new("RGB", (7, 7), (1, 2, 3)).save(new_image)
    third = make_extractor()
    extract_for_items([*items, "new"], [*questions, "A new question"], [*images, new_image], third, tmp_path / "cache")
    assert third.text_encoder.encoded == ["A new question"] and third.image_encoder.encoded == 1


def test_cache_survives_an_interrupted_run(dataset, tmp_path: Path) -> None:
    items, questions, images = dataset
    cache_dir = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        extract_for_items(items, questions, images, make_extractor(fail_on_call=2), cache_dir, batch_size=2)
    # debris a kill could leave: a half-written temporary file and a truncated shard
    image_folder = EmbeddingCache(cache_dir).folder(CountingImageEncoder.identity)
    (image_folder / ".tmp-abc.npz").write_bytes(b"PK\x03\x04 half written")
    (image_folder / "shard-truncated.npz").write_bytes(b"PK\x03\x04 truncated")
    resumed = make_extractor()
    features = extract_for_items(items, questions, images, resumed, cache_dir, batch_size=2)
    # the first batch (items 0-1: two images, two questions) was kept; the rest is computed now
    assert resumed.image_encoder.encoded == 2  # images 2 and 4 (3 repeats 0)
    assert "What colour?" not in resumed.text_encoder.encoded and "How wide?" not in resumed.text_encoder.encoded
    reference = make_extractor().extract(questions, images, items)
    np.testing.assert_array_equal(features.image, reference.image)
    np.testing.assert_array_equal(features.text, reference.text)


def test_cache_keys_by_identity_and_content(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put("enc-a", ["k1", "k2"], np.ones((2, 3)))
    cache.put("enc-b", ["k1"], np.zeros((1, 4)))
    reopened = EmbeddingCache(tmp_path)
    assert set(reopened.get("enc-a", ["k1", "k2", "k3"])) == {"k1", "k2"}
    assert reopened.get("enc-b", ["k1"])["k1"].shape == (4,)
    reopened.compact("enc-a")
    assert len(list(reopened.folder("enc-a").glob("shard-*.npz"))) <= 1
    assert set(EmbeddingCache(tmp_path).get("enc-a", ["k1", "k2"])) == {"k1", "k2"}
    with pytest.raises(ValueError, match="2 keys for 1 vectors"):
        cache.put("enc-a", ["x", "y"], np.ones((1, 3)))


def test_bad_inputs_name_the_item(dataset, tmp_path: Path) -> None:
    items, questions, images = dataset
    extractor = make_extractor()
    with pytest.raises(ValueError, match="aligned"):
        extractor.extract(questions, images[:-1], items)
    with pytest.raises(FileNotFoundError, match="item3"):
        extractor.extract(questions, [*images[:3], tmp_path / "missing.png", *images[4:]], items)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"item0.*broken\.png"):
        extractor.extract(questions[:1], [broken], items[:1])
    with pytest.raises(TypeError, match="item0"):
        extractor.extract([None], [None], ["item0"])  # type: ignore[list-item]


@pytest.mark.parametrize("overlap", [False, True])
def test_extract_one_equals_batch_extraction(dataset, overlap: bool) -> None:
    items, questions, images = dataset
    with FeatureExtractor(CountingTextEncoder(), CountingImageEncoder(), overlap=overlap) as extractor:  # type: ignore[arg-type]
        batch = extractor.extract(questions, images, items)
        for row in (0, 4, 6):
            live = extractor.extract_one(questions[row], images[row], item_id=items[row])
            assert len(live) == 1 and live.item_ids[0] == items[row]
            np.testing.assert_array_equal(live.text[0], batch.text[row])
            np.testing.assert_array_equal(live.image[0], batch.image[row])
            np.testing.assert_array_equal(live.stats[0], batch.stats[row])
            assert live.has_image[0] == batch.has_image[row]
        in_memory = extractor.extract_one("What colour?", Image.open(images[0]))
        np.testing.assert_array_equal(in_memory.image[0], batch.image[0])


@pytest.mark.parametrize("overlap", [False, True])
def test_a_live_batch_split_into_tasks_equals_batch_extraction(dataset, overlap: bool) -> None:
    """Seven queries of several lengths: text tasks in length order and image tasks of two, put back in row order."""
    items, questions, images = dataset
    questions = [question * (1 + row % 3) for row, question in enumerate(questions)]
    with FeatureExtractor(CountingTextEncoder(), CountingImageEncoder(), overlap=overlap) as extractor:  # type: ignore[arg-type]
        batch = extractor.extract(questions, images, items)
        live = extractor.extract_live(questions, images, items)
    assert list(live.item_ids) == items
    np.testing.assert_array_equal(live.text, batch.text)
    np.testing.assert_array_equal(live.image, batch.image)
    np.testing.assert_array_equal(live.stats, batch.stats)
    np.testing.assert_array_equal(live.has_image, batch.has_image)


@pytest.mark.parametrize("overlap", [False, True])
def test_run_live_keeps_order_and_returns_each_tasks_error(overlap: bool) -> None:
    def fails() -> int:
        raise ValueError("task 2 failed")

    with FeatureExtractor(CountingTextEncoder(), CountingImageEncoder(), overlap=overlap) as extractor:  # type: ignore[arg-type]
        results = extractor.run_live([lambda: 1, lambda: 2, fails, lambda: 4])
    assert results[:2] == [1, 2] and results[3] == 4
    assert isinstance(results[2], ValueError) and str(results[2]) == "task 2 failed"
