"""Append-only JSONL result stores that survive crashes, kill -9 and Ctrl-C.

Each record is one line. A background task writes whatever records have queued up, flushes and fsyncs
them (group commit), so a crash loses at most the records not yet written: the calls still in flight.
A line cut short by a crash is dropped when the store is next opened. One process at a time may write a
store (an advisory lock, released by the operating system when the process dies).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

Record = dict[str, Any]


class StoreLockedError(RuntimeError):
    """Another process is writing the same store."""


def read_records(path: Path) -> list[Record]:
    """The records of a store (none when it does not exist).

    A last line without its newline is the remains of an interrupted write and is ignored; any other line
    that is not a JSON object is logged and skipped (the call it stood for is made again).
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n") or not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("%s:%d: not a JSON record; skipped (that call will be made again)", path, number)
    return records


def latest(records: Iterable[Record], key: tuple[str, ...] = ("item_id", "model")) -> dict[tuple, Record]:
    """The last record per key: later attempts supersede earlier ones."""
    return {tuple(record.get(name) for name in key): record for record in records}


def _drop_torn_tail(handle: Any, path: Path) -> None:
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    handle.seek(0)
    content = handle.read()
    keep = content.rfind(b"\n") + 1
    handle.truncate(keep)
    handle.seek(keep)
    logger.warning("%s: dropped an incomplete last line (%d bytes) left by an interrupted run", path, size - keep)


class RecordWriter:
    """Durably appends records to a JSONL store: ``async with RecordWriter(path) as out: out.append(record)``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._queue: asyncio.Queue[Record] = asyncio.Queue()
        self._handle: Any = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    async def __aenter__(self) -> RecordWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+b")
        if fcntl is not None:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._handle.close()
                raise StoreLockedError(f"{self.path}: another process is writing this store") from None
        _drop_torn_tail(self._handle, self.path)
        self._task = asyncio.create_task(self._run(), name=f"writer:{self.path.name}")
        return self

    def append(self, record: Record) -> None:
        """Queue a record; it reaches the disk with the next group commit."""
        self._queue.put_nowait(record)

    def _take_queued(self) -> list[Record]:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def _write(self, batch: list[Record]) -> None:
        data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in batch).encode("utf-8")
        self._handle.write(data)
        self._handle.flush()
        self.written += len(batch)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()] + self._take_queued()
            self._write(batch)
            await asyncio.to_thread(os.fsync, self._handle.fileno())

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        remaining = self._take_queued()
        if remaining:
            self._write(remaining)
        os.fsync(self._handle.fileno())
        self._handle.close()  # closing releases the lock
