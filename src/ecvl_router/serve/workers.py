"""Several gateway processes on one port: ``ecvl-router serve --workers N``.

The parent process binds the shared listening socket and one socket per worker, then starts N worker
processes (spawned, not forked: each loads its own encoders and router). Every worker accepts connections
on the shared socket and on its own port, where ``/metrics`` shows that worker's metrics (Prometheus
scrapes each worker's port; its metrics carry ``ecvl_router_worker{worker, pid}``). Routing is stateless
(the conversation marker travels in the messages), so any worker can answer any turn. A worker exits when
the parent dies; when a worker exits, the parent stops the others.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

_PARENT_CHECK_S = 0.5


def worker_threads(workers: int) -> int:
    """Torch threads of each worker's main thread: the cores shared out (at least 1)."""
    return max(1, (os.cpu_count() or 1) // workers)


def run_workers(config: Path, shared: socket.socket, own: list[socket.socket], *, log_level: str, access_log: bool) -> int:
    """Run one worker per socket of ``own`` (each also on ``shared``) until a signal or a worker's exit; its exit code."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=worker_main, name=f"ecvl-router-worker-{index}",
            args=(config, index, [shared, sock], worker_threads(len(own)), os.getpid(), log_level, access_log),
        )
        for index, sock in enumerate(own)
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        exit_code = 0
        while not stopping.is_set():
            ready = wait([process.sentinel for process in processes], timeout=0.5)
            ended = [process for process in processes if process.sentinel in ready]
            if ended:
                exit_code = ended[0].exitcode or 0
                logger.error("worker %s exited with %s; stopping the others", ended[0].name, ended[0].exitcode)
                break
        return exit_code
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def worker_main(config: Path, index: int, sockets: list[socket.socket], threads: int, parent: int, log_level: str, access_log: bool) -> None:
    """One worker: its own gateway (encoders, router, metrics) served on the shared socket and its own."""
    import torch
    import uvicorn

    from ecvl_router.serve.app import create_app
    from ecvl_router.serve.config import load_gateway_config
    from ecvl_router.serve.gateway import Gateway

    torch.set_num_threads(threads)
    gateway = Gateway.from_config(load_gateway_config(config))
    gateway.metrics.name_worker(index)
    server = uvicorn.Server(uvicorn.Config(create_app(gateway), log_level=log_level, access_log=access_log, log_config=None))

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        server.should_exit = True

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    server.run(sockets=sockets)
