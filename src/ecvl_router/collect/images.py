"""Images for chat requests: base64 data URIs, downscaled so the longest side fits a limit."""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageOps

_SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def _encode(image: Image.Image) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        image.save(buffer, format="PNG", optimize=False)
        return buffer.getvalue(), "image/png"
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "image/jpeg"


@lru_cache(maxsize=64)
def image_data_uri(path: Path, max_side: int | None) -> str:
    """A ``data:`` URI of the image at ``path``; the file's own bytes when it fits ``max_side`` and is a
    JPEG, PNG, WebP or GIF, otherwise a re-encoded (and, when too large, downscaled) JPEG or PNG."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        fits = max_side is None or max(image.size) <= max_side
        if fits and image.format in _SENT_AS_IS:
            payload, mime = data, _SENT_AS_IS[image.format]
        else:
            upright = ImageOps.exif_transpose(image)
            if not fits:
                upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            payload, mime = _encode(upright)
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
