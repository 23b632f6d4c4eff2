"""Balanced, seeded assignment of a routing policy to each participant session (permuted blocks).

The sessions of a scenario are numbered in the order they start (their *slot*). Slots ``0..k-1`` form the
first block of ``k`` policies, ``k..2k-1`` the second, and so on; each block is a seeded random
permutation of the policies. After any number of sessions, the policies' counts in a scenario therefore
differ by at most one, while the next policy cannot be told from the previous ones within a block.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def assign_policy(policies: Sequence[str], seed: int, scenario: str, slot: int) -> str:
    """The policy of the session in position ``slot`` (0-based) of ``scenario``; ``seed`` is non-negative."""
    if not policies:
        raise ValueError("no policies to assign")
    if slot < 0 or seed < 0:
        raise ValueError(f"slot and seed must be non-negative, got slot {slot}, seed {seed}")
    block, position = divmod(slot, len(policies))
    entropy = [seed, zlib.crc32(scenario.encode("utf-8")), block]
    order = np.random.default_rng(np.random.SeedSequence(entropy)).permutation(len(policies))
    return policies[int(order[position])]
