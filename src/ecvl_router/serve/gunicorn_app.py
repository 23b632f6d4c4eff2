"""``ecvl-router serve --workers N``: the gateway in N processes under gunicorn, with uvicorn's worker class.

gunicorn's master holds the listening socket and forks the workers; each worker reads the configuration and
loads its own encoders and router. gunicorn's conventions hold: SIGTERM drains in-flight requests and stops,
a worker that dies is replaced, ``--timeout`` replaces a worker that stops answering the master,
``--graceful-timeout`` bounds the drain. SIGHUP to the master reloads the bundle: the master forwards it to
every worker, which swaps the bundle in place (``serve/reload.py``) instead of being restarted.

All workers write their metrics to one prometheus multiprocess folder (``metrics_dir``, which the caller
creates and names in ``PROMETHEUS_MULTIPROC_DIR`` before prometheus-client is first imported), so ``/metrics``
shows the whole service; the live gauges of a worker that exits are removed from it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer
from gunicorn.workers.base import Worker
from prometheus_client import multiprocess
from uvicorn_worker import UvicornWorker

logger = logging.getLogger(__name__)

KEEPALIVE_S = 5
"""Seconds an idle keep-alive connection stays open: uvicorn's default, as for one process."""


def worker_threads(workers: int) -> int:
    """Torch threads of each worker's main thread: the cores shared out (at least 1)."""
    return max(1, (os.cpu_count() or 1) // workers)


@dataclass(frozen=True)
class WorkerSettings:
    """What the service runs: the configuration file, the workers, the listening socket's file descriptor,
    gunicorn's timeouts (seconds), logging, and the multiprocess metrics folder."""

    config: Path
    workers: int
    listener_fd: int
    metrics_dir: Path
    timeout: int = 30
    graceful_timeout: int = 30
    log_level: str = "warning"
    access_log: bool = False


class GatewayArbiter(Arbiter):
    """gunicorn's master, except that SIGHUP reloads the bundle in every worker instead of restarting them."""

    def handle_hup(self) -> None:
        self.log.info("Hang up: reloading the router bundle in %d workers", len(self.WORKERS))
        self.kill_workers(signal.SIGHUP)

    def stop(self, graceful: bool = True) -> None:
        """gunicorn's stop, carried on when a further worker fails to boot while it waits for the workers
        (gunicorn raises HaltServer from its reaping then; the service is stopping already)."""
        while True:
            try:
                super().stop(graceful)
                return
            except HaltServer:
                continue


class GatewayWorker(UvicornWorker):
    """uvicorn's gunicorn worker, which ignores SIGHUP until it starts loading its gateway (which then listens
    for it), reports to the master while it loads (loading encoders is work, not a hang), and drains within
    the graceful timeout (a second is kept for closing the gateway)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = max(self.cfg.graceful_timeout - 1, 0)

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def load_wsgi(self) -> None:
        loaded = threading.Event()
        heartbeat = threading.Thread(target=self._notify_until, args=(loaded,), name="boot-heartbeat", daemon=True)
        heartbeat.start()
        try:
            super().load_wsgi()
        finally:
            loaded.set()
            heartbeat.join()

    def _notify_until(self, loaded: threading.Event) -> None:
        while not loaded.wait(max(self.timeout, 1)):
            self.notify()


class GatewayService(BaseApplication):
    """The gunicorn application: its settings from :class:`WorkerSettings`, a gateway app loaded in each worker."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        super().__init__(prog="ecvl-router serve")

    def load_config(self) -> None:
        s = self.settings
        for name, value in {
            "bind": [f"fd://{s.listener_fd}"],
            "workers": s.workers,
            "worker_class": GatewayWorker,
            "timeout": s.timeout,
            "graceful_timeout": s.graceful_timeout,
            "keepalive": KEEPALIVE_S,
            "loglevel": s.log_level,
            "accesslog": "-" if s.access_log else None,
            "errorlog": "-",
            "proc_name": "ecvl-router",
            "child_exit": self._worker_exited,
            "control_socket_disable": True,
        }.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        """In a worker: this worker's gateway app (configuration read, bundle and encoders loaded)."""
        import torch

        from ecvl_router.config import ConfigError
        from ecvl_router.features.onnx_encoders import OnnxExportError
        from ecvl_router.features.weights import WeightsIntegrityError, WeightsNotFoundError
        from ecvl_router.learning.bundle import BundleError
        from ecvl_router.serve.app import create_app
        from ecvl_router.serve.config import load_gateway_config
        from ecvl_router.serve.gateway import Gateway
        from ecvl_router.serve.heap import freeze_heap
        from ecvl_router.serve.metrics import GatewayMetrics
        from ecvl_router.serve.reload import Hangups, Reloader

        hangups = Hangups()
        hangups.install()
        torch.set_num_threads(worker_threads(self.settings.workers))
        try:
            gateway = Gateway.from_config(load_gateway_config(self.settings.config),
                                          metrics=GatewayMetrics(multiprocess_dir=self.settings.metrics_dir))
        except (ConfigError, BundleError, WeightsNotFoundError, WeightsIntegrityError, OnnxExportError, FileNotFoundError) as exc:
            logger.error("a worker cannot start: %s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        app = create_app(gateway, reloader=Reloader(gateway, self.settings.config, master=os.getppid(), hangups=hangups))
        freeze_heap()
        return app

    def run(self) -> None:
        GatewayArbiter(self).run()

    def _worker_exited(self, server: Arbiter, worker: Worker) -> None:
        """gunicorn's child_exit hook: the dead worker's live gauges leave the multiprocess folder."""
        multiprocess.mark_process_dead(worker.pid, str(self.settings.metrics_dir))
