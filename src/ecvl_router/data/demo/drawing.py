"""Pillow drawing helpers shared by the demo task families: canvases, fonts, colours and degradations."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 119, 180),
    "yellow": (240, 200, 30),
    "orange": (255, 127, 14),
    "purple": (148, 103, 189),
    "brown": (140, 86, 75),
    "pink": (227, 119, 194),
    "gray": (127, 127, 127),
    "black": (20, 20, 20),
}

MIN_SIDE, MAX_SIDE = 192, 640
_ASPECTS = (1.0, 4 / 3, 3 / 2, 16 / 9, 2.0)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled TrueType font at ``size`` pixels (no system font needed)."""
    return ImageFont.load_default(size=max(6, int(size)))


def canvas_size(rng: np.random.Generator, *, min_long: int = 256) -> tuple[int, int]:
    """A random (width, height) with both sides in [MIN_SIDE, MAX_SIDE] and a common aspect ratio."""
    long_side = int(rng.integers(min_long, MAX_SIDE + 1))
    short_side = max(MIN_SIDE, round(long_side / _ASPECTS[rng.integers(len(_ASPECTS))]))
    return (long_side, short_side) if rng.random() < 0.6 else (short_side, long_side)


def light_colour(rng: np.random.Generator) -> RGB:
    """A pale background colour."""
    return tuple(int(v) for v in rng.integers(205, 256, size=3))


def blend(colour: RGB, background: RGB, contrast: float) -> RGB:
    """``colour`` faded towards ``background``: contrast 1 keeps it, 0 makes it vanish."""
    return tuple(round(b + contrast * (c - b)) for c, b in zip(colour, background))


def text_width(text: str, size: int) -> int:
    """Rendered width in pixels of ``text`` at font ``size``."""
    left, _, right, _ = font(size).getbbox(text)
    return right - left


def draw_polygon_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, **style: object) -> None:
    """Draw a circle, square or triangle of radius ``r`` centred at (cx, cy)."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), **style)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), **style)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], **style)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def add_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Additive pixel noise of standard deviation ``sigma`` (0–255 scale).

    The noise is uniform on [-a, a] with a = sigma·√3: in integers it costs a tenth of Gaussian noise.
    """
    amplitude = round(sigma * math.sqrt(3))
    if amplitude < 1:
        return image
    pixels = np.asarray(image, dtype=np.int16)
    noise = rng.integers(-amplitude, amplitude + 1, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), mode=image.mode)


def blur(image: Image.Image, radius: float) -> Image.Image:
    """Gaussian blur of ``radius`` pixels (no-op for a radius below 0.1)."""
    return image.filter(ImageFilter.GaussianBlur(radius)) if radius >= 0.1 else image


def textured_background(size: tuple[int, int], rng: np.random.Generator, blotches: int) -> tuple[Image.Image, RGB]:
    """A pale canvas with ``blotches`` soft ellipses (clutter behind a scene's objects), and its base colour."""
    base = light_colour(rng)
    image = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(blotches):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.03, 0.15) * width, rng.uniform(0.03, 0.15) * height
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=blend(light_colour(rng), base, 0.8))
    return image, base
