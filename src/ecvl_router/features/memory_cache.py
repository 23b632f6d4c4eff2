"""In-memory LRU cache of embeddings for live routing, bounded in bytes.

Vectors are keyed by the encoder's identity and a content key (of the question text, or of an image's
network input after decoding and resizing), so a conversation that re-sends its image is encoded once,
and no encoder is ever served another encoder's vector. Hits and misses are counted per identity.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def array_key(array: np.ndarray) -> str:
    """Content key of an array: its shape, dtype and values."""
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(memoryview(contiguous).cast("B"))
    return digest.hexdigest()[:32]


@dataclass
class CacheCounts:
    """Lookups of one encoder identity."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of lookups that hit (0 before the first lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class MemoryEmbeddingCache:
    """Vectors by (identity, key), least recently used first out once they exceed ``max_bytes``; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._counts: dict[str, CacheCounts] = {}
        self._lock = threading.Lock()

    def get(self, identity: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (each lookup counted as a hit or a miss)."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            counts = self._counts.setdefault(identity, CacheCounts())
            for key in keys:
                vector = self._entries.get((identity, key))
                if vector is None:
                    counts.misses += 1
                else:
                    self._entries.move_to_end((identity, key))
                    found[key] = vector
                    counts.hits += 1
        return found

    def put(self, identity: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]``, evicting the least recently used beyond the size bound."""
        with self._lock:
            for key, vector in zip(keys, vectors):
                entry = (identity, key)
                if entry in self._entries:
                    self._entries.move_to_end(entry)
                    continue
                stored = np.array(vector, dtype=np.float32)
                if stored.nbytes > self.max_bytes:
                    continue
                self._entries[entry] = stored
                self._bytes += stored.nbytes
                while self._bytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= evicted.nbytes

    def counts(self) -> dict[str, CacheCounts]:
        """Hits and misses by encoder identity (a copy)."""
        with self._lock:
            return {identity: CacheCounts(c.hits, c.misses) for identity, c in self._counts.items()}

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
