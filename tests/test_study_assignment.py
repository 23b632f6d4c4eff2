"""The balanced, seeded assignment of policies to participant sessions."""

from __future__ import annotations

import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ecvl_router.study import StudyStore, assign_policy

POLICIES = ["ecvl", "all-large", "all-small", "win-soft-1"]


@pytest.mark.parametrize("policies", [POLICIES, ["a", "b"], ["a", "b", "c"]])
def test_counts_never_differ_by_more_than_one(policies: list[str]) -> None:
    counts: Counter[str] = Counter()
    for slot in range(60):
        counts[assign_policy(policies, 7, "quality", slot)] += 1
        assert max(counts[p] for p in policies) - min(counts[p] for p in policies) <= 1, (slot, counts)


def test_every_block_is_a_permutation_of_the_policies() -> None:
    for block in range(20):
        chosen = [assign_policy(POLICIES, 3, "speed", block * len(POLICIES) + i) for i in range(len(POLICIES))]
        assert sorted(chosen) == sorted(POLICIES)


def test_assignment_is_seeded_and_differs_by_seed_and_scenario() -> None:
    def sequence(seed: int, scenario: str) -> list[str]:
        return [assign_policy(POLICIES, seed, scenario, slot) for slot in range(40)]

    assert sequence(0, "quality") == sequence(0, "quality")
    assert sequence(0, "quality") != sequence(1, "quality")
    assert sequence(0, "quality") != sequence(0, "speed")
    assert len({tuple(sequence(0, "quality")[b * 4 : b * 4 + 4]) for b in range(10)}) > 1  # blocks are shuffled


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="no policies"):
        assign_policy([], 0, "quality", 0)
    with pytest.raises(ValueError, match="non-negative"):
        assign_policy(POLICIES, 0, "quality", -1)


def test_sessions_started_at_once_are_balanced_per_scenario(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    StudyStore(path).bind(POLICIES, seed=11)

    def start(index: int) -> tuple[str, str]:
        scenario = "quality" if index % 2 else "speed"
        session = StudyStore(path).open_session(f"P{index}", scenario, 7 if scenario == "quality" else 5, seed=11)
        return scenario, session.policy

    with ThreadPoolExecutor(8) as pool:
        assigned = list(pool.map(start, range(16)))
    for scenario in ("quality", "speed"):
        counts = Counter(policy for s, policy in assigned if s == scenario)
        assert counts == {policy: 2 for policy in POLICIES}
    again = StudyStore(path).open_session("P3", "quality", 7, seed=11)  # a returning participant keeps the session
    assert again.policy == assigned[3][1] and again.participant_id == "P3"
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 16  # and starts no new one
