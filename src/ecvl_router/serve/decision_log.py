"""The decision log: one JSON line per routed request, the raw material of an online study.

A record holds the time, request id, scenario, decision (p, tau, route), who answered, fallbacks, latencies
and backend statuses; never message text, image bytes or keys.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any


class DecisionLog:
    """Appends records to a JSON-lines file; safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
