"""A real ``redis-server`` on 127.0.0.1 for the tests: a free port, its files in a temporary folder, no persistence."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.serve_support import free_port


class RedisServer:
    """``redis-server`` listening on 127.0.0.1 only; ``stop()`` ends it, and ``start()`` starts it again on the same port."""

    def __init__(self, folder: Path, binary: str) -> None:
        self.folder = folder
        self.binary = binary
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout: float = 30) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
                   "--appendonly", "no", "--logfile", str(self.folder / "redis.log")]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.folder / "redis.log"
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log.read_text() if log.exists() else ''}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=15)
        self._process = None


@pytest.fixture
def redis_server(tmp_path: Path):
    """A running redis-server (the test is skipped where the binary is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt install redis-server), so the Redis route store cannot be tested")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, binary).start()
    try:
        yield server
    finally:
        server.stop()
