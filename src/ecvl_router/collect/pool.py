"""Run many calls with a fixed number of workers, record every outcome, and report progress."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ecvl_router.collect.store import Record, RecordWriter

J = TypeVar("J")


@dataclass
class Tally:
    """Progress of one backend: calls to make this run, done before it (resumed; ``failed_before`` of them
    failures kept as they were), done and failed in it, and when its calls began and ended."""

    name: str
    total: int
    resumed: int = 0
    failed_before: int = 0
    done: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def throughput(self) -> float:
        """Calls per second while this backend was being called (from its first call to its last answer)."""
        if self.started_at is None:
            return 0.0
        elapsed = (self.ended_at if self.ended_at is not None else time.monotonic()) - self.started_at
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def ended_in_failure(self) -> int:
        """(item, model) pairs whose last call failed: in this run, or before it and not retried."""
        return self.failed + self.failed_before


ProgressCallback = Callable[[Tally], Any]


async def drain(
    jobs: Iterable[J],
    work: Callable[[J], Awaitable[Record]],
    *,
    workers: int,
    writer: RecordWriter,
    tally: Tally,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Await ``work(job)`` for every job with ``workers`` at a time; each returned record (``ok`` true or false,
    ``error_kind`` when false) is appended to ``writer`` as soon as it arrives."""
    pending = iter(jobs)
    tally.started_at = time.monotonic()

    async def worker() -> None:
        for job in pending:
            record = await work(job)
            writer.append(record)
            tally.done += 1
            if not record["ok"]:
                tally.failed += 1
                tally.failures[record["error_kind"]] += 1
            if on_progress is not None:
                on_progress(tally)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(workers, tally.total))):
                group.create_task(worker())
    finally:
        tally.ended_at = time.monotonic()
