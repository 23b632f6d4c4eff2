"""Deterministic partition of items over machines by a hash of their id."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (counted from 0): the items whose id hashes to ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """A shard from ``"i/n"``."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard {text!r}: expected i/n, e.g. 0/4")
        return cls(int(match[1]), int(match[2]))

    def contains(self, item_id: str) -> bool:
        """Whether the item belongs to this shard (the same answer on every machine and Python version)."""
        digest = hashlib.sha256(item_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    @property
    def label(self) -> str:
        return f"shard-{self.index}-of-{self.count}"
