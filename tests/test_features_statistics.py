"""Query statistics on hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecvl_router.features.statistics import STAT_NAMES, is_grayscale, query_statistics


def stats_of(question: str, image: Image.Image | None = None) -> dict[str, float]:
    vector = query_statistics(question, image)
    assert vector.dtype == np.float32 and vector.shape == (len(STAT_NAMES),)
    return dict(zip(STAT_NAMES, vector.tolist()))


def test_names_are_unique_and_documented() -> None:
    assert len(set(STAT_NAMES)) == len(STAT_NAMES)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "features.md").read_text()
    assert [name for name in STAT_NAMES if f"`{name}`" not in docs] == []


def test_text_statistics_hand_computed() -> None:
    s = stats_of("How many cats (3.5 kg) sit on 2 mats?\nAnswer: 1,000!")
    assert s["text_words"] == 11  # How many cats (3.5 kg) sit on 2 mats? Answer: 1,000!
    assert s["text_chars"] == 52
    assert s["text_special_chars"] == 7  # ( . ) ? : , !
    assert s["text_numeric_tokens"] == 3  # 3.5, 2, 1,000
    assert s["text_question_marks"] == 1
    assert s["text_lines"] == 2
    assert s["text_non_ascii_chars"] == 0
    assert s["text_mean_word_length"] == pytest.approx(42 / 11)


def test_non_ascii_and_full_width_question_mark() -> None:
    s = stats_of("图中有几只猫？")
    assert s["text_words"] == 1
    assert s["text_non_ascii_chars"] == 7
    assert s["text_question_marks"] == 1
    assert s["text_special_chars"] == 1  # the full-width question mark


def test_empty_question() -> None:
    s = stats_of("")
    assert s["text_words"] == 0 and s["text_chars"] == 0 and s["text_mean_word_length"] == 0


def test_query_without_image_has_zero_image_statistics() -> None:
    s = stats_of("What is 2+2?")
    assert s["has_image"] == 0
    assert all(value == 0 for name, value in s.items() if name.startswith("image_"))


def test_rgb_colour_image() -> None:
    image = Image.new("RGB", (300, 200), (200, 30, 30))
    s = stats_of("q", image)
    assert s["has_image"] == 1
    assert (s["image_width"], s["image_height"]) == (300, 200)
    assert s["image_aspect_ratio"] == pytest.approx(1.5)
    assert s["image_megapixels"] == pytest.approx(0.06)
    assert s["image_channels"] == 3
    assert s["image_is_grayscale"] == 0 and s["image_has_alpha"] == 0


def test_grayscale_modes_and_gray_rgb() -> None:
    assert stats_of("q", Image.new("L", (10, 20), 90))["image_channels"] == 1
    assert stats_of("q", Image.new("L", (10, 20), 90))["image_is_grayscale"] == 1
    gray_values = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    gray_rgb = Image.fromarray(np.stack([gray_values] * 3, axis=2))  # RGB whose channels are equal
    s = stats_of("q", gray_rgb)
    assert s["image_channels"] == 3 and s["image_is_grayscale"] == 1


def test_grayscale_check_tolerates_jpeg_noise_but_not_colour(tmp_path) -> None:
    gray_values = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (1000, 4))  # 1000 x 512, large enough to reduce
    gray_rgb = Image.fromarray(np.stack([gray_values] * 3, axis=2))
    gray_rgb.save(tmp_path / "gray.jpg", quality=70)
    assert is_grayscale(Image.open(tmp_path / "gray.jpg"))
    colourful = np.stack([gray_values, gray_values[:, ::-1], np.full_like(gray_values, 128)], axis=2)
    assert not is_grayscale(Image.fromarray(colourful))


def test_alpha_and_palette_images() -> None:
    rgba = stats_of("q", Image.new("RGBA", (8, 4), (0, 0, 255, 100)))
    assert rgba["image_channels"] == 4 and rgba["image_has_alpha"] == 1 and rgba["image_is_grayscale"] == 0
    palette = Image.new("RGB", (8, 8), (0, 200, 0)).convert("P")
    assert stats_of("q", palette)["image_channels"] == 3
    palette.info["transparency"] = 0
    assert stats_of("q", palette)["image_has_alpha"] == 1
