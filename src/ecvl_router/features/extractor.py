"""The feature stage: text embedding, image embedding and statistics for every query.

:class:`FeatureExtractor` serves both uses: :meth:`~FeatureExtractor.extract` featurises a dataset
in batches through the on-disk cache, and :meth:`~FeatureExtractor.extract_live` makes the features of
a batch of live routing decisions with low latency (the two encoders overlapped in two threads,
optionally through an in-memory LRU cache). Both produce the same features for the same encoder
settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Self, TypeVar

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecvl_router.config import ConfigError, read_yaml, validation_message
from ecvl_router.features.cache import EmbeddingCache, bytes_key, pixels_key, text_key
from ecvl_router.features.features import QueryFeatures
from ecvl_router.features.image import (
    ImageEncoder,
    ImagePrecision,
    MobileNetV2Encoder,
    TransformersImageEncoder,
    VisionPooling,
)
from ecvl_router.features.imaging import ImageInput, open_image
from ecvl_router.features.memory_cache import MemoryEmbeddingCache, array_key
from ecvl_router.features.mobilenet import ARCHITECTURE as MOBILENET
from ecvl_router.features.sources import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL
from ecvl_router.features.statistics import (
    STAT_NAMES,
    STATISTICS_VERSION,
    image_statistics,
    query_statistics,
    text_statistics,
)
from ecvl_router.features.text import Pooling, TextEncoder, TextPrecision

logger = logging.getLogger(__name__)

T = TypeVar("T")

TEXT_CHUNK_CHARS = 448
"""Characters per task of live extraction, counted as the longest question's length times the questions: questions
taken in order of length until another would pass it (at least one). About 120 MiniLM tokens with padding: fewer
leave the matrix products short, more add padding and attention; measured on demo and MATH-V questions."""
IMAGE_CHUNK = 2
"""Images per task of live extraction: small enough that two threads finish a batch together."""

Progress = Callable[[int, int], None]


class ExtractorSettings(BaseModel):
    """Which encoders to load and how to run them (loadable from YAML)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_model: str = Field(DEFAULT_TEXT_MODEL, description="Hugging Face id or local folder")
    text_pooling: Pooling | None = Field(None, description="mean or cls; default: the model's own")
    text_max_length: int | None = Field(None, ge=1, description="token limit; default: the model's own")
    text_precision: TextPrecision = "float32"
    image_model: str = Field(DEFAULT_IMAGE_MODEL, description=f"{MOBILENET!r}, or a Hugging Face id/folder")
    image_weights: Path | None = Field(None, description=f"explicit {MOBILENET} checkpoint file")
    image_size: int = Field(224, ge=32, le=1024, description=f"{MOBILENET} input side in pixels")
    image_precision: ImagePrecision = "float32"
    image_pooling: VisionPooling = Field("cls", description="Hugging Face vision models only")
    allow_download: bool = Field(True, description=f"try the official {MOBILENET} URL (5 s timeout)")
    overlap: bool = Field(True, description="live extraction runs the two encoders in parallel threads")
    branch_threads: int = Field(1, ge=1, description="intra-op threads per encoder in live extraction (torch; ONNX Runtime)")
    onnx: Path | None = Field(None, description="folder written by `ecvl-router export-encoders`: both encoders run in ONNX Runtime")

    @model_validator(mode="after")
    def _onnx_fixes_the_encoders(self) -> Self:
        if self.onnx is not None:
            chosen = [name for name in _ENCODER_FIELDS if getattr(self, name) != type(self).model_fields[name].default]
            if chosen:
                raise ValueError(f"onnx: the export fixes the encoders (see its export.json); remove {', '.join(chosen)}")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> ExtractorSettings:
        """Settings from a YAML file (``onnx`` relative to the file); ConfigError names the file and each bad field."""
        document = read_yaml(path) or {}
        try:
            settings = cls.model_validate(document)
        except ValidationError as exc:
            raise ConfigError(validation_message(path, exc)) from None
        if settings.onnx is not None and not settings.onnx.is_absolute():
            settings = settings.model_copy(update={"onnx": Path(path).parent / settings.onnx})
        return settings


_ENCODER_FIELDS = ("text_model", "text_pooling", "text_max_length", "text_precision", "image_model", "image_weights",
                   "image_size", "image_precision", "image_pooling")


class FeatureExtractor:
    """Text encoder + image encoder + query statistics -> :class:`QueryFeatures`."""

    def __init__(
        self,
        text_encoder: TextEncoder,
        image_encoder: ImageEncoder,
        *,
        overlap: bool = True,
        branch_threads: int = 1,
    ) -> None:
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.overlap = overlap
        self.branch_threads = branch_threads
        self._pool: ThreadPoolExecutor | None = None
        self._live_lock = threading.Lock()
        self._pool_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ExtractorSettings) -> FeatureExtractor:
        """Load the encoders ``settings`` name (see :class:`ExtractorSettings`)."""
        if settings.onnx is not None:
            from ecvl_router.features.onnx_encoders import load_onnx_encoders

            text_onnx, image_onnx = load_onnx_encoders(settings.onnx, threads=settings.branch_threads)
            return cls(text_onnx, image_onnx, overlap=settings.overlap, branch_threads=settings.branch_threads)  # type: ignore[arg-type]
        text = TextEncoder.load(
            settings.text_model,
            pooling=settings.text_pooling,
            max_length=settings.text_max_length,
            precision=settings.text_precision,
        )
        image: ImageEncoder
        if settings.image_model == MOBILENET:
            image = MobileNetV2Encoder.load(
                settings.image_weights,
                image_size=settings.image_size,
                precision=settings.image_precision,
                allow_download=settings.allow_download,
            )
        else:
            image = TransformersImageEncoder.load(settings.image_model, pooling=settings.image_pooling)
        return cls(text, image, overlap=settings.overlap, branch_threads=settings.branch_threads)

    @classmethod
    def default(cls) -> FeatureExtractor:
        """MiniLM-L6 text encoder and ImageNet MobileNetV2 image encoder, default settings."""
        return cls.from_settings(ExtractorSettings())

    def identity(self) -> dict[str, object]:
        """What produced the features, for manifests."""
        return {
            "text_encoder": self.text_encoder.identity,
            "text_dim": self.text_encoder.dim,
            "image_encoder": self.image_encoder.identity,
            "image_dim": self.image_encoder.dim,
            "statistics": STATISTICS_VERSION,
            "stat_names": list(STAT_NAMES),
        }

    # ----------------------------------------------------------------- batch, cached
    def extract(
        self,
        questions: Sequence[str],
        images: Sequence[ImageInput | None],
        item_ids: Sequence[str],
        cache: EmbeddingCache | None = None,
        progress: Progress | None = None,
        batch_size: int = 32,
    ) -> QueryFeatures:
        """Features of many queries; anything already in ``cache`` is not recomputed.

        ``images[i]`` is a file path, encoded bytes, a PIL image, or None for a text-only query.
        Cache keys are content hashes: of the question text, and of the image file's bytes (or
        pixels). ``progress(done, total)`` is called after each batch.
        """
        if not len(questions) == len(images) == len(item_ids):
            raise ValueError(
                f"got {len(questions)} questions, {len(images)} images and {len(item_ids)} item ids; "
                "they must be aligned"
            )
        cache = cache if cache is not None else EmbeddingCache(None)
        questions = [_check_question(question, item_id) for question, item_id in zip(questions, item_ids)]
        images, item_ids = list(images), [str(item_id) for item_id in item_ids]
        text_keys = [text_key(question) for question in questions]
        image_keys: list[str | None] = []
        stat_keys: list[str] = []
        for start in range(0, len(questions), batch_size):
            batch = slice(start, start + batch_size)
            sources = [_ImageSource.of(image, item) for image, item in zip(images[batch], item_ids[batch])]
            self._fill_text(cache, questions[batch], text_keys[batch])
            self._fill_images(cache, sources)
            stat_keys += self._fill_statistics(cache, questions[batch], text_keys[batch], sources)
            image_keys += [None if source is None else source.key for source in sources]
            if progress is not None:
                progress(len(image_keys), len(questions))
        for identity in (self.text_encoder.identity, self.image_encoder.identity, STATISTICS_VERSION):
            cache.compact(identity)
        return QueryFeatures(
            item_ids=np.asarray(item_ids, dtype=str),
            text=_gather(cache, self.text_encoder.identity, text_keys, self.text_encoder.dim),
            image=_gather(cache, self.image_encoder.identity, image_keys, self.image_encoder.dim),
            stats=_gather(cache, STATISTICS_VERSION, stat_keys, len(STAT_NAMES)),
            has_image=np.array([key is not None for key in image_keys], dtype=bool),
            questions=np.asarray(questions, dtype=object),
        )

    def _fill_text(self, cache: EmbeddingCache, questions: list[str], keys: list[str]) -> None:
        todo = _missing(cache, self.text_encoder.identity, keys, questions)
        if todo:
            cache.put(self.text_encoder.identity, list(todo), self.text_encoder.encode(list(todo.values())))

    def _fill_images(self, cache: EmbeddingCache, sources: list[_ImageSource | None]) -> None:
        present = [source for source in sources if source is not None]
        todo = _missing(cache, self.image_encoder.identity, [source.key for source in present], present)
        if todo:
            vectors = self.image_encoder.encode([source.image for source in todo.values()])
            cache.put(self.image_encoder.identity, list(todo), vectors)

    @staticmethod
    def _fill_statistics(
        cache: EmbeddingCache, questions: list[str], text_keys: list[str], sources: list[_ImageSource | None]
    ) -> list[str]:
        """Keys of the (question, image) statistics; computes the ones not cached yet."""
        keys = [f"{text}:{'-' if source is None else source.key}" for text, source in zip(text_keys, sources)]
        todo = _missing(cache, STATISTICS_VERSION, keys, list(zip(questions, sources)))
        if todo:
            rows = [
                query_statistics(question, None if source is None else source.image)
                for question, source in todo.values()
            ]
            cache.put(STATISTICS_VERSION, list(todo), np.stack(rows))
        return keys

    # ----------------------------------------------------------------- live queries
    def extract_one(self, question: str, image: ImageInput | None = None, item_id: str = "query") -> QueryFeatures:
        """Features of one query with low latency (see :meth:`extract_live`)."""
        return self.extract_live([question], [image], [item_id])

    def extract_live(
        self,
        questions: Sequence[str],
        images: Sequence[ImageInput | None],
        item_ids: Sequence[str] | None = None,
        memory: MemoryEmbeddingCache | None = None,
    ) -> QueryFeatures:
        """Features of a batch of live queries (not cached on disk).

        With ``overlap`` the work runs as small tasks in two worker threads, each limited to
        ``branch_threads`` intra-op threads: the questions in chunks of similar length (``TEXT_CHUNK_CHARS``),
        then the images in chunks of ``IMAGE_CHUNK``, each task going to whichever thread is free, so both
        cores stay busy until the batch is done; concurrent calls queue their tasks behind each other's, so
        the threads go on with the next batch while one call assembles its result. Without ``overlap``: all
        texts in one call, then all images in one call, one caller at a time. Vectors found in ``memory``
        are not recomputed; new ones are stored there.
        """
        ids = [str(item_id) for item_id in item_ids] if item_ids is not None else ["query"] * len(questions)
        if not len(questions) == len(images) == len(ids):
            raise ValueError(f"got {len(questions)} questions, {len(images)} images and {len(ids)} item ids")
        questions = [_check_question(question, item_id) for question, item_id in zip(questions, ids)]
        if not self.overlap:
            with self._live_lock:
                text, text_stats = self._text_branch(questions, memory)
                image, image_stats = self._image_branch(images, ids, memory)
        else:
            pool = self._live_pool()
            by_length = sorted(range(len(questions)), key=lambda row: len(questions[row]))
            text_rows = _length_chunks(by_length, [len(question) for question in questions], TEXT_CHUNK_CHARS)
            image_rows = [list(range(start, min(start + IMAGE_CHUNK, len(images)))) for start in range(0, len(images), IMAGE_CHUNK)]
            text_parts = [pool.submit(self._text_branch, [questions[row] for row in rows], memory) for rows in text_rows]
            image_parts = [
                pool.submit(self._image_branch, [images[row] for row in rows], [ids[row] for row in rows], memory)
                for rows in image_rows
            ]
            text, text_stats = _assemble(text_rows, [part.result() for part in text_parts])
            image, image_stats = _assemble(image_rows, [part.result() for part in image_parts])
        return QueryFeatures(
            item_ids=np.asarray(ids, dtype=str),
            text=text,
            image=image,
            stats=np.concatenate([text_stats, image_stats], axis=1),
            has_image=np.asarray([image is not None for image in images], dtype=bool),
            questions=np.asarray(questions, dtype=object),
        )

    def run_live(self, tasks: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """The results of ``tasks`` (e.g. decoding a batch's images), run in the live worker threads with
        ``overlap`` (else here, in order); a task that raises has its exception as its result."""
        if not self.overlap:
            return [_result_or_error(task) for task in tasks]
        pool = self._live_pool()
        return [future.result() for future in [pool.submit(_result_or_error, task) for task in tasks]]

    def _live_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    2, thread_name_prefix="features", initializer=torch.set_num_threads, initargs=(self.branch_threads,)
                )
            return self._pool

    def _text_branch(self, questions: list[str], memory: MemoryEmbeddingCache | None) -> tuple[np.ndarray, np.ndarray]:
        vectors = _through_memory(
            memory, self.text_encoder.identity, lambda: [text_key(question) for question in questions],
            len(questions), lambda rows: self.text_encoder.encode([questions[row] for row in rows]),
        )
        return vectors, np.asarray([text_statistics(question) for question in questions], dtype=np.float32)

    def _image_branch(
        self, images: Sequence[ImageInput | None], item_ids: list[str], memory: MemoryEmbeddingCache | None
    ) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.zeros((len(images), self.image_encoder.dim), dtype=np.float32)
        present = [row for row, image in enumerate(images) if image is not None]
        decoded = {row: open_image(images[row], name=f"item {item_ids[row]!r}") for row in present}  # type: ignore[arg-type]
        if present:
            prepared = self.image_encoder.prepare([decoded[row] for row in present])
            vectors[present] = _through_memory(
                memory, self.image_encoder.identity, lambda: [array_key(row) for row in prepared], len(present),
                lambda rows: self.image_encoder.embed(prepared if len(rows) == len(prepared) else prepared[rows]),
            )
        stats = [image_statistics(decoded.get(row)) for row in range(len(images))]
        return vectors, np.asarray(stats, dtype=np.float32)

    def close(self) -> None:
        """Stop the worker threads of :meth:`extract_one` (they restart on the next call)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def extract_for_items(
    item_ids: Sequence[str],
    questions: Sequence[str],
    image_paths: Sequence[Path | None],
    extractor: FeatureExtractor,
    cache_dir: Path | None,
    progress: Progress | None = None,
    batch_size: int = 32,
) -> QueryFeatures:
    """Featurise a dataset's items through the embedding cache in ``cache_dir`` (None: no cache).

    ``image_paths[i]`` is the resolved image file of ``item_ids[i]`` or None for a text-only query.
    """
    cache = EmbeddingCache(cache_dir)
    return extractor.extract(questions, image_paths, item_ids, cache=cache, progress=progress, batch_size=batch_size)


# ----------------------------------------------------------------- helpers
def _check_question(question: object, item_id: str) -> str:
    if not isinstance(question, str):
        raise TypeError(f"item {item_id!r}: question must be a string, got {type(question).__name__}")
    return question


def _missing(cache: EmbeddingCache, identity: str, keys: list[str], values: list) -> dict:
    """``{key: value}`` for the keys not yet in the cache, first occurrence of each."""
    present = cache.get(identity, keys)
    todo: dict = {}
    for key, value in zip(keys, values):
        if key not in present:
            todo.setdefault(key, value)
    return todo


@dataclass
class _ImageSource:
    """One query's image: its content key, and its decoded pixels on first use."""

    key: str
    content: bytes | Image.Image
    label: str  # names the item and file in error messages

    @classmethod
    def of(cls, image: ImageInput | None, item_id: str) -> _ImageSource | None:
        if image is None:
            return None
        if isinstance(image, Image.Image):
            return cls(pixels_key(image), image, f"item {item_id!r} (in-memory image)")
        if isinstance(image, bytes):
            return cls(bytes_key(image), image, f"item {item_id!r} (image bytes)")
        label = f"item {item_id!r} ({image})"
        try:
            data = Path(image).read_bytes()
        except OSError as error:
            raise FileNotFoundError(f"{label}: cannot read the image: {error.strerror}") from error
        return cls(bytes_key(data), data, label)

    @cached_property
    def image(self) -> Image.Image:
        return open_image(self.content, name=self.label)


def _length_chunks(rows: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """``rows`` (in order of length) cut into chunks whose longest length times their size stays within ``budget``."""
    chunks: list[list[int]] = []
    for row in rows:
        if chunks and (len(chunks[-1]) + 1) * lengths[row] <= budget:
            chunks[-1].append(row)
        else:
            chunks.append([row])
    return chunks


def _result_or_error(task: Callable[[], T]) -> T | Exception:
    try:
        return task()
    except Exception as error:  # noqa: BLE001 - handed to the caller as this task's result
        return error


def _assemble(chunks: list[list[int]], parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors and statistics of chunked rows, put back in row order."""
    rows = np.concatenate([np.asarray(chunk, dtype=np.int64) for chunk in chunks])
    vectors, stats = np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])
    placed_vectors, placed_stats = np.empty_like(vectors), np.empty_like(stats)
    placed_vectors[rows], placed_stats[rows] = vectors, stats
    return placed_vectors, placed_stats


def _through_memory(
    memory: MemoryEmbeddingCache | None,
    identity: str,
    keys: Callable[[], list[str]],
    count: int,
    encode_rows: Callable[[list[int]], np.ndarray],
) -> np.ndarray:
    """Vectors of ``count`` inputs: from ``memory`` where present, else ``encode_rows`` of the missing rows
    (the first of equal keys), which are then stored. Without ``memory`` every row is encoded."""
    if memory is None:
        return encode_rows(list(range(count)))
    wanted = keys()
    found = memory.get(identity, wanted)
    todo: dict[str, int] = {}
    for row, key in enumerate(wanted):
        if key not in found:
            todo.setdefault(key, row)
    if todo:
        vectors = encode_rows(list(todo.values()))
        memory.put(identity, list(todo), vectors)
        found.update(zip(todo, vectors))
    return np.stack([found[key] for key in wanted]).astype(np.float32, copy=False)


def _gather(cache: EmbeddingCache, identity: str, keys: Sequence[str | None], dim: int) -> np.ndarray:
    """Rows of cached vectors in ``keys`` order; zeros where the key is None."""
    found = cache.get(identity, [key for key in keys if key is not None])
    out = np.zeros((len(keys), dim), dtype=np.float32)
    for row, key in enumerate(keys):
        if key is not None:
            out[row] = found[key]
    return out
