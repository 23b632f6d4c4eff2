"""Dynamic micro-batching: items submitted from any thread are processed in batches by worker threads.

A batch starts as soon as a worker is free. An item alone is processed at once; when several are waiting,
the worker takes up to ``max_batch`` of them and, if fewer are there, waits at most ``max_wait_ms`` (counted
from the first item's arrival) for more. Items that arrive while batches are processed form the next one, so
under load batches grow by themselves. With ``in_flight`` workers, that many batches are processed at once;
one worker at a time collects, so a free worker never splits a batch another is still filling.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFunction = Callable[[Sequence[Item]], Sequence[Result | Exception]]
"""Results for a batch of items, in order; an exception in a slot fails that item only."""


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: Future[Result] = field(default_factory=Future)
    arrived: float = field(default_factory=time.perf_counter)


_STOP = object()


class MicroBatcher(Generic[Item, Result]):
    """Runs ``process`` on batches of submitted items in ``in_flight`` worker threads (started on first use)."""

    def __init__(
        self, process: BatchFunction, *, max_batch: int, max_wait_ms: float, in_flight: int = 1, name: str = "batcher"
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0 or in_flight < 1:
            raise ValueError(
                f"max_batch and in_flight must be >= 1 and max_wait_ms >= 0, got {max_batch}, {in_flight} and {max_wait_ms}"
            )
        self.process = process
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.in_flight = in_flight
        self.name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._collect_lock = threading.Lock()
        self._sizes: Counter[int] = Counter()
        self._sizes_lock = threading.Lock()
        self._closed = False

    def submit(self, item: Item) -> Future[Result]:
        """Queue ``item``; the future completes when its batch has been processed."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        pending: _Pending[Item, Result] = _Pending(item)
        self._ensure_started()
        self._queue.put(pending)
        return pending.future

    def batch_sizes(self) -> dict[int, int]:
        """How many batches of each size were processed so far."""
        with self._sizes_lock:
            return dict(self._sizes)

    def close(self) -> None:
        """Finish the queued items, then stop the workers."""
        self._closed = True
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout=30)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True) for index in range(self.in_flight)
                ]
                for thread in self._threads:
                    thread.start()

    def _work(self) -> None:
        while True:
            with self._collect_lock:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch, stop = self._collect(first)  # type: ignore[arg-type]
            self._run(batch)
            if stop:
                return

    def _collect(self, first: _Pending[Item, Result]) -> tuple[list[_Pending[Item, Result]], bool]:
        """The batch starting with ``first``, and whether the stop signal came while collecting it."""
        batch = [first]
        deadline = first.arrived + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                following = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if len(batch) == 1 or remaining <= 0:
                    break
                try:
                    following = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if following is _STOP:
                return batch, True
            batch.append(following)  # type: ignore[arg-type]
        return batch, False

    def _run(self, batch: list[_Pending[Item, Result]]) -> None:
        live = [pending for pending in batch if pending.future.set_running_or_notify_cancel()]
        if not live:
            return
        with self._sizes_lock:
            self._sizes[len(live)] += 1
        try:
            results = self.process([pending.item for pending in live])
        except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
            logger.exception("%s: a batch of %d failed", self.name, len(live))
            results = [error] * len(live)
        for pending, result in zip(live, results, strict=True):
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
