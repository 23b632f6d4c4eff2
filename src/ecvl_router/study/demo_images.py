"""Demo images participants can pick instead of uploading one, each with a suggested question.

Taken from a dataset folder (a few items with images, spread over its sources) when the study names one,
for instance the demo benchmark that ``ecvl-router backend-sim`` answers from; otherwise rendered with
Pillow by the demo benchmark's task families (charts, scenes, signs, tables, shapes, landscapes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}


@dataclass(frozen=True)
class DemoImage:
    """One demo image: its id on the page, a title, the suggested question, and the encoded bytes."""

    id: str
    title: str
    question: str
    data: bytes
    mime: str


def load_demo_images(count: int, seed: int, data: Path | None = None) -> list[DemoImage]:
    """``count`` demo images from the dataset folder ``data``, or rendered when ``data`` is None."""
    if count == 0:
        return []
    return _from_dataset(Path(data), count, seed) if data is not None else _rendered(count, seed)


def _from_dataset(folder: Path, count: int, seed: int) -> list[DemoImage]:
    """Items with an image, taken in turn from each source (in a seeded order within a source)."""
    from ecvl_router.data import load_rsd

    rsd = load_rsd(folder)
    items = rsd.items[rsd.items["image"].notna()]
    if items.empty:
        raise ValueError(f"{folder}: no item has an image, so there are no demo images to offer")
    rng = np.random.default_rng(seed)
    queues = {source: list(group.sample(frac=1.0, random_state=rng).itertuples(index=False)) for source, group in items.groupby("source")}
    chosen = []
    while len(chosen) < count and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    images = []
    for index, item in enumerate(chosen):
        path = rsd.image_path(item.image)
        with Image.open(path) as image:
            fmt = image.format or "PNG"
        images.append(DemoImage(f"demo-{index + 1}", _title(item.source), item.question, path.read_bytes(), _MIME.get(fmt, "image/png")))
    return images


def _rendered(count: int, seed: int) -> list[DemoImage]:
    """One image per task family in turn, rendered from ``seed``."""
    from ecvl_router.data.demo.families import FAMILIES

    images = []
    families = list(FAMILIES.items())
    for index in range(count):
        source, (render, _) = families[index % len(families)]
        attempt = 0
        while (task := render(np.random.default_rng([seed, index, attempt]))).image is None:  # a text-only item
            attempt += 1
        buffer = io.BytesIO()
        task.image.save(buffer, task.image_format, **({"quality": 90} if task.image_format == "JPEG" else {"optimize": True}))
        images.append(DemoImage(f"demo-{index + 1}", _title(source), task.question, buffer.getvalue(), _MIME[task.image_format]))
    return images


def _title(source: str) -> str:
    return source.replace("_", " ").replace("-", " ").capitalize()
