"""Lightweight query statistics (paper section 4.2): cheap signals of input complexity.

``STAT_NAMES`` lists the entries of the vector :func:`query_statistics` returns, in order. Values
are raw counts and sizes (routers standardise them on their training split). For a query without
an image every ``image_*`` entry is 0.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image

STATISTICS_VERSION = "query-stats/v2"

STAT_NAMES: tuple[str, ...] = (
    "text_words",  # whitespace-separated tokens
    "text_chars",  # characters (Unicode code points)
    "text_special_chars",  # characters neither letter/digit nor whitespace (punctuation, symbols, maths)
    "text_numeric_tokens",  # numbers: digit runs with inner . , : / (e.g. 3, 3.14, 1,000, 10:30, 1/2)
    "text_question_marks",  # '?' and full-width '？'
    "text_lines",  # lines (1 + newlines)
    "text_non_ascii_chars",  # characters outside ASCII (other scripts, symbols)
    "text_mean_word_length",  # mean characters per word (0 for an empty question)
    "has_image",  # 1 if the query has an image, else 0
    "image_width",  # pixels
    "image_height",  # pixels
    "image_aspect_ratio",  # width / height
    "image_megapixels",  # width * height / 1e6
    "image_channels",  # colour channels of the stored image: 1 (L), 2 (LA), 3 (RGB, palette), 4 (RGBA, CMYK)
    "image_is_grayscale",  # 1 for grayscale modes, or colour images whose channels (nearly) agree
    "image_has_alpha",  # 1 if the image has transparency
)

_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_GRAYSCALE_CHECK_SIDE = 128  # colour images are checked on a box-filtered copy of about this size
_GRAYSCALE_TOLERANCE = 8  # max-min channel spread (of 255) allowed, for JPEG noise ...
_GRAYSCALE_OUTLIERS = 0.01  # ... in all but this share of pixels


def text_statistics(question: str) -> list[float]:
    """The ``text_*`` entries of STAT_NAMES for ``question``."""
    words = question.split()
    return [
        len(words),
        len(question),
        sum(1 for c in question if not (c.isalnum() or c.isspace())),
        len(_NUMBER.findall(question)),
        question.count("?") + question.count("\uff1f"),
        question.count("\n") + 1,
        sum(1 for c in question if ord(c) > 127),
        sum(map(len, words)) / len(words) if words else 0.0,
    ]


def _channel_count(image: Image.Image) -> int:
    if image.mode == "P":
        return 4 if "transparency" in image.info else 3
    return len(image.getbands())


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info


def is_grayscale(image: Image.Image) -> bool:
    """True for grayscale modes, and for colour images whose channels agree within JPEG noise:
    the max-min channel spread is at most 8 (of 255) for 99 % of pixels (on a reduced copy)."""
    if image.mode in _GRAYSCALE_MODES:
        return True
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    factor = math.ceil(max(rgb.size) / _GRAYSCALE_CHECK_SIDE)
    if factor > 1:
        rgb = rgb.reduce(factor)
    red, green, blue = np.moveaxis(np.asarray(rgb), 2, 0)  # per-channel planes: much faster than reducing over axis 2
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return bool(np.count_nonzero(spread > _GRAYSCALE_TOLERANCE) <= _GRAYSCALE_OUTLIERS * spread.size)


def image_statistics(image: Image.Image | None) -> list[float]:
    """``has_image`` and the ``image_*`` entries of STAT_NAMES (all 0 without an image)."""
    if image is None:
        return [0.0] * 8
    width, height = image.size
    return [
        1.0,
        width,
        height,
        width / height if height else 0.0,
        width * height / 1e6,
        _channel_count(image),
        float(is_grayscale(image)),
        float(_has_alpha(image)),
    ]


def query_statistics(question: str, image: Image.Image | None) -> np.ndarray:
    """Float32 vector of STAT_NAMES for a question and its (decoded) image or None."""
    return np.asarray(text_statistics(question) + image_statistics(image), dtype=np.float32)
