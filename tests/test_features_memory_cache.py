"""The in-memory LRU embedding cache: hits, eviction by size, no reuse across encoders, and live extraction through it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.features.memory_cache import MemoryEmbeddingCache, array_key
from tests.test_features_extractor import CountingImageEncoder, CountingTextEncoder

VECTOR = np.ones(4, dtype=np.float32)  # 16 bytes


def test_a_stored_vector_is_a_hit_and_an_unknown_key_a_miss() -> None:
    cache = MemoryEmbeddingCache(max_bytes=1024)
    cache.put("enc@1", ["a"], VECTOR[None, :])
    found = cache.get("enc@1", ["a", "b"])
    assert list(found) == ["a"] and np.array_equal(found["a"], VECTOR)
    counts = cache.counts()["enc@1"]
    assert (counts.hits, counts.misses, counts.hit_rate) == (1, 1, 0.5)


def test_the_least_recently_used_vector_is_evicted_beyond_the_size_bound() -> None:
    cache = MemoryEmbeddingCache(max_bytes=3 * VECTOR.nbytes)
    cache.put("enc@1", ["a", "b", "c"], np.stack([VECTOR] * 3))
    cache.get("enc@1", ["a"])  # a is now more recent than b
    cache.put("enc@1", ["d"], VECTOR[None, :])
    assert set(cache.get("enc@1", ["a", "b", "c", "d"])) == {"a", "c", "d"}
    assert len(cache) == 3 and cache.size_bytes == 3 * VECTOR.nbytes


def test_a_vector_larger_than_the_bound_is_not_kept() -> None:
    cache = MemoryEmbeddingCache(max_bytes=VECTOR.nbytes - 1)
    cache.put("enc@1", ["a"], VECTOR[None, :])
    assert len(cache) == 0 and cache.size_bytes == 0


def test_vectors_are_never_shared_between_encoder_identities() -> None:
    cache = MemoryEmbeddingCache(max_bytes=1024)
    cache.put("enc@1", ["a"], VECTOR[None, :])
    assert cache.get("enc@2", ["a"]) == {}
    assert cache.counts()["enc@2"].misses == 1


def test_array_keys_follow_content_shape_and_type() -> None:
    pixels = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_key(pixels) == array_key(pixels.copy())
    assert array_key(pixels) != array_key(pixels.reshape(4, 3))
    assert array_key(pixels) != array_key(pixels.astype(np.float64))
    assert array_key(pixels.T) == array_key(np.ascontiguousarray(pixels.T))


def png(colour: tuple[int, int, int], size: tuple[int, int] = (20, 10), **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG", **options)
    return out.getvalue()


def test_live_extraction_encodes_a_repeated_image_and_question_once() -> None:
    text, image = CountingTextEncoder(), CountingImageEncoder()
    extractor = FeatureExtractor(text, image, overlap=False)
    cache = MemoryEmbeddingCache(max_bytes=1 << 20)
    first = extractor.extract_live(["What colour?"], [png((255, 0, 0))], memory=cache)
    # the same pixels, encoded differently: the key is the decoded and resized content, not the file's bytes
    again = extractor.extract_live(["What colour?", "Other?"], [png((255, 0, 0), compress_level=9), None], memory=cache)
    assert image.encoded == 1 and text.encoded == ["What colour?", "Other?"]
    np.testing.assert_array_equal(again.take(np.array([0])).image, first.image)
    np.testing.assert_array_equal(again.take(np.array([0])).text, first.text)
    assert again.has_image.tolist() == [True, False] and not again.image[1].any()


def test_live_extraction_through_the_cache_equals_extraction_without_it() -> None:
    extractor = FeatureExtractor(CountingTextEncoder(), CountingImageEncoder(), overlap=True)
    cache = MemoryEmbeddingCache(max_bytes=1 << 20)
    questions, images = ["a?", "b?", "a?"], [png((1, 2, 3)), png((9, 9, 9), (30, 30)), png((1, 2, 3))]
    plain = extractor.extract_live(questions, images)
    for _ in range(2):
        cached = extractor.extract_live(questions, images, memory=cache)
        for field in ("text", "image", "stats", "has_image"):
            np.testing.assert_array_equal(getattr(cached, field), getattr(plain, field))
    extractor.close()


def test_another_encoder_does_not_reuse_the_cached_vectors() -> None:
    cache = MemoryEmbeddingCache(max_bytes=1 << 20)
    first_image, other_image = CountingImageEncoder(), CountingImageEncoder()
    other_image.identity = "counting-image@other-weights"
    FeatureExtractor(CountingTextEncoder(), first_image, overlap=False).extract_live(["q"], [png((5, 5, 5))], memory=cache)
    FeatureExtractor(CountingTextEncoder(), other_image, overlap=False).extract_live(["q"], [png((5, 5, 5))], memory=cache)
    assert first_image.encoded == 1 and other_image.encoded == 1


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryEmbeddingCache(-1)
