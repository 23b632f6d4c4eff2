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
    """Progress of one backend: calls to make this run, done before it (resumed), done and failed in it."""

    name: str
    total: int
    resumed: int = 0
    done: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def throughput(self) -> float:
        """Calls per second this run."""
        elapsed = time.monotonic() - self.started_at
        return self.done / elapsed if elapsed > 0 else 0.0


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

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(workers, tally.total))):
            group.create_task(worker())
