"""On-disk embedding cache keyed by encoder identity and item content.

Layout: one folder per encoder identity (``<root>/<readable slug>-<hash>/``) holding
``identity.txt`` and shard files ``shard-<uuid>.npz`` (arrays ``keys`` and ``vectors``). Every
:meth:`EmbeddingCache.put` writes one new shard to a temporary file and renames it into place, so an
interrupted run leaves only complete shards (stray temporaries are ignored) and the next run
recomputes only what is missing. Several processes may share a cache: shard names never collide.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

_SHARD_GLOB = "shard-*.npz"
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def text_key(text: str) -> str:
    """Content key of a question."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def bytes_key(data: bytes) -> str:
    """Content key of an encoded image file."""
    return hashlib.sha256(data).hexdigest()[:32]


def pixels_key(image: Image.Image) -> str:
    """Content key of an in-memory image (mode, size and pixels)."""
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:32]


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` via a temporary file in the same folder and an atomic rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """Vectors by (identity, key); ``root=None`` keeps them in memory only."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self._vectors: dict[str, dict[str, np.ndarray]] = {}

    def folder(self, identity: str) -> Path:
        """The folder holding ``identity``'s shards."""
        if self.root is None:
            raise ValueError("an in-memory cache has no folder")
        slug = _SLUG_UNSAFE.sub("_", identity)[:80]
        return self.root / f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"

    def get(self, identity: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors among ``keys`` (missing keys are simply absent)."""
        stored = self._load(identity)
        return {key: stored[key] for key in keys if key in stored}

    def put(self, identity: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]``; on disk, as one atomically written shard."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if not keys:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        stored = self._load(identity)
        stored.update(zip(keys, vectors))
        if self.root is not None:
            shard = self.folder(identity) / f"shard-{uuid.uuid4().hex}.npz"
            key_array = np.asarray(keys, dtype=str)
            _atomic_write(shard, lambda out: np.savez(out, keys=key_array, vectors=vectors))

    def compact(self, identity: str) -> None:
        """Merge ``identity``'s shards into one (fewer files to read next time)."""
        if self.root is None:
            return
        folder = self.folder(identity)
        shards = sorted(folder.glob(_SHARD_GLOB))
        if len(shards) < 2:
            return
        stored = self._load(identity)
        keys = np.asarray(list(stored), dtype=str)
        vectors = np.stack(list(stored.values()))
        merged = folder / f"shard-{uuid.uuid4().hex}.npz"
        _atomic_write(merged, lambda out: np.savez(out, keys=keys, vectors=vectors))
        for shard in shards:  # an interruption here only leaves duplicates of identical vectors
            shard.unlink(missing_ok=True)

    def _load(self, identity: str) -> dict[str, np.ndarray]:
        if identity in self._vectors:
            return self._vectors[identity]
        stored: dict[str, np.ndarray] = {}
        if self.root is not None:
            folder = self.folder(identity)
            folder.mkdir(parents=True, exist_ok=True)
            marker = folder / "identity.txt"
            if not marker.is_file():
                _atomic_write(marker, lambda out: out.write(identity.encode()))
            elif marker.read_text() != identity:
                raise ValueError(f"{folder} belongs to {marker.read_text()!r}, not {identity!r}")
            for shard in sorted(folder.glob(_SHARD_GLOB)):
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        stored.update(zip(data["keys"].tolist(), data["vectors"]))
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                    logger.warning("ignoring unreadable cache shard %s: %s", shard, error)
        self._vectors[identity] = stored
        return stored
