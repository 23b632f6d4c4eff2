"""Append-only JSONL result stores that survive crashes, kill -9 and Ctrl-C.

Each record is one line. A writer thread takes the records as they are appended, writes and flushes them
to the operating system at once (a crash of the process then loses only the calls still in flight) and
fsyncs the file at most every ``sync_interval_s`` while it has unsynced lines (group commit), which bounds
what a power loss or kernel crash can take. File I/O never blocks the event loop: on common filesystems a
write to a page being synced waits for the disk. A line cut short by a crash is dropped when the store is
next opened. One process at a time may write a store (an advisory lock, released by the operating system
when the process dies).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
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


_STOP = object()


class RecordWriter:
    """Durably appends records to a JSONL store: ``async with RecordWriter(path) as out: out.append(record)``."""

    def __init__(self, path: Path, *, sync_interval_s: float = 0.05) -> None:
        self.path = Path(path)
        self.sync_interval_s = sync_interval_s
        self.written = 0
        self._handle: Any = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

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
        self._thread = threading.Thread(target=self._run, name=f"writer:{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def append(self, record: Record) -> None:
        """Hand a record to the writer thread, which writes it at once."""
        if self._error is not None:
            raise OSError(f"{self.path}: cannot write results") from self._error
        self._queue.put(record)

    def _run(self) -> None:
        try:
            synced_at, unsynced = time.monotonic(), False
            while True:
                wait = max(0.0, self.sync_interval_s - (time.monotonic() - synced_at)) if unsynced else None
                try:
                    batch = [self._queue.get(timeout=wait)]
                except queue.Empty:
                    batch = []
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                stop = _STOP in batch
                records = [record for record in batch if record is not _STOP]
                if records:
                    self._handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
                    self._handle.flush()
                    self.written += len(records)
                    unsynced = True
                if unsynced and (stop or time.monotonic() - synced_at >= self.sync_interval_s):
                    os.fsync(self._handle.fileno())
                    synced_at, unsynced = time.monotonic(), False
                if stop:
                    return
        except BaseException as exc:  # reported to the event loop by append() and on close
            self._error = exc

    async def __aexit__(self, *exc_info: object) -> None:
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()
        self._handle.close()  # closing releases the lock
        if self._error is not None:
            raise OSError(f"{self.path}: cannot write results") from self._error
