"""Image loading and preprocessing with PIL and numpy."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageInput = Path | str | bytes | Image.Image

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def open_image(source: ImageInput, name: str | None = None) -> Image.Image:
    """A fully decoded PIL image from a path, encoded bytes or an image.

    Errors name ``name`` (default: the path): FileNotFoundError, or ValueError if undecodable.
    """
    if isinstance(source, Image.Image):
        return source
    name = name or ("image bytes" if isinstance(source, bytes) else str(source))
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
        image.load()
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{name}: image file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{name}: cannot decode the image: {error}") from error
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: transparency is composited onto white; 16-bit and float grayscale are rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I"):  # 16-bit (or 32-bit integer) grayscale, e.g. 16-bit PNG
        values = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def normalised_batch(
    images: Sequence[Image.Image],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """(n, 3, size, size) float32 array, channels-last in memory (a transposed view of (n, size, size, 3)).

    Each image is converted to RGB and resized as a whole to ``size`` x ``size`` (bilinear with
    antialiasing, no crop: the content at the borders is kept; the aspect ratio is among the
    statistics), scaled to [0, 1] and normalised with ``mean``/``std``.
    """
    resized = np.stack([np.asarray(to_rgb(image).resize((size, size), Image.BILINEAR)) for image in images])
    scale = np.float32(1.0 / 255.0) / np.asarray(std, dtype=np.float32)
    offset = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    rows = resized.reshape(len(images) * size, size * 3).astype(np.float32)  # one image row per array row, RGBRGB...
    rows *= np.tile(scale, size)  # in place, per channel; a row-long inner loop instead of numpy's slow 3-wide one
    rows -= np.tile(offset, size)
    return rows.reshape(len(images), size, size, 3).transpose(0, 3, 1, 2)
