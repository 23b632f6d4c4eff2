"""Hot reload: the bundle the configuration names replaces the served one without a restart.

A reload reads the configuration file again, loads the bundle it names (and its encoders) in a thread while
the old bundle keeps serving, checks that it fits the configuration, and swaps it in
(:meth:`~ecvl_router.serve.gateway.Gateway.swap`): requests that arrive from then on decide with it, requests
already deciding finish with the old one, which is closed after them. A bundle that does not load or does not
fit is refused, with a log line and ``ecvl_router_bundle_reloads_total{outcome="refused"}``, and the old one
keeps serving. Only ``bundle`` and ``encoders`` are reloaded; other changes to the file wait for a restart.

SIGHUP asks for a reload (:class:`Hangups`). Under gunicorn every worker reloads its own gateway: the master
forwards its SIGHUP to the workers, and ``POST /admin/reload`` in any worker signals the master.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ecvl_router.config import ConfigError
from ecvl_router.serve.config import GatewayConfig, load_gateway_config
from ecvl_router.serve.gateway import Gateway, load_router

logger = logging.getLogger(__name__)

RELOADED_FIELDS = ("bundle", "encoders")
"""The configuration fields a reload applies."""
SERVICE_RELOAD_TIMEOUT_S = 600.0
"""How long ``POST /admin/reload`` under gunicorn waits for its own worker's reload."""


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``loaded`` (or refused, with the reason in ``message``), the bundle served after it
    and the one served before (content hashes)."""

    loaded: bool
    bundle: str | None
    previous: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Hangups:
    """SIGHUP as a request to reload: caught from :meth:`install` on (a signal that comes while the gateway is
    still loading is kept) and handed to a callback on the event loop once one is attached."""

    def __init__(self) -> None:
        self.pending = False
        self._deliver: Callable[[], None] | None = None
        self._previous: Any = None

    def install(self) -> None:
        """Catch SIGHUP in this process (main thread only) until :meth:`uninstall`."""
        self._previous = signal.signal(signal.SIGHUP, self._caught)

    def uninstall(self) -> None:
        """Give SIGHUP back to the handler it had before :meth:`install`."""
        signal.signal(signal.SIGHUP, self._previous)

    def attach(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the running event loop for every SIGHUP, and now for one that came before."""
        loop = asyncio.get_running_loop()
        self._deliver = lambda: loop.call_soon_threadsafe(callback)
        if self.pending:
            self.pending = False
            self._deliver()

    def detach(self) -> None:
        self._deliver = None

    def _caught(self, signum: int, frame: FrameType | None) -> None:
        if self._deliver is None:
            self.pending = True
        else:
            self._deliver()


class Reloader:
    """Reloads ``gateway``'s bundle from the configuration file ``source`` (None: the bundle path it serves).

    ``master``: the pid of the gunicorn master, whose SIGHUP reaches every worker; ``hangups``: this process's
    SIGHUP, which :meth:`start` turns into reloads. Reloads run one at a time.
    """

    def __init__(self, gateway: Gateway, source: Path | None = None, *, master: int | None = None,
                 hangups: Hangups | None = None) -> None:
        self.gateway = gateway
        self.source = source
        self.master = master
        self.hangups = hangups
        self._lock = asyncio.Lock()
        self._waiting: list[asyncio.Future[ReloadResult]] = []
        self._tasks: set[asyncio.Task[ReloadResult]] = set()

    def start(self) -> None:
        """Reload on every SIGHUP from now on (within the running event loop)."""
        if self.hangups is not None:
            self.hangups.attach(self._hung_up)

    async def stop(self) -> None:
        """Stop listening and wait for a reload in progress (its router is then the one the gateway closes)."""
        if self.hangups is not None:
            self.hangups.detach()
        await asyncio.gather(*self._tasks)

    async def reload_service(self) -> ReloadResult:
        """Reload every process of the service; the result of this process's reload.

        Under gunicorn this signals the master, which forwards SIGHUP to every worker, this one included.
        """
        if self.master is None:
            return await self.reload()
        waiter: asyncio.Future[ReloadResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        os.kill(self.master, signal.SIGHUP)
        return await asyncio.wait_for(waiter, SERVICE_RELOAD_TIMEOUT_S)

    async def reload(self) -> ReloadResult:
        """Load the bundle the configuration names and serve it, or refuse it and keep the served one."""
        async with self._lock:
            waiting, self._waiting = self._waiting, []
            result = await self._reload()
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(result)
            return result

    def _hung_up(self) -> None:
        logger.info("SIGHUP: reloading the router bundle")
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self) -> ReloadResult:
        gateway, previous = self.gateway, self.gateway.served.digest
        try:
            config = self._configuration()
        except ConfigError as error:
            return self._refused(previous, str(error))
        try:
            router = await asyncio.to_thread(load_router, config)
        except Exception as error:  # noqa: BLE001 - whatever fails, the served bundle stays
            return self._refused(previous, f"cannot load the bundle {config.bundle}: {error}")
        try:
            gateway.swap(router)
        except Exception as error:  # noqa: BLE001 - a bundle that does not fit is refused, not served
            await asyncio.to_thread(router.close)
            return self._refused(previous, f"the bundle {config.bundle} does not fit the configuration: {error}")
        gateway.config = gateway.config.model_copy(update={name: getattr(config, name) for name in RELOADED_FIELDS})
        gateway.metrics.reloads.labels("loaded").inc()
        logger.warning("reloaded the router bundle %s: serving %s (was %s)", config.bundle, router.digest, previous)
        return ReloadResult(True, router.digest, previous, f"serving bundle {router.digest} from {config.bundle}")

    def _configuration(self) -> GatewayConfig:
        """The configuration file read again (the served configuration without a file)."""
        running = self.gateway.config
        if self.source is None:
            return running
        config = load_gateway_config(self.source, type(running))
        changed = [name for name in type(running).model_fields
                   if name not in RELOADED_FIELDS and getattr(config, name) != getattr(running, name)]
        if changed:
            logger.warning("%s: %s changed; a reload applies bundle and encoders only, the rest takes a restart",
                           self.source, ", ".join(changed))
        return config

    def _refused(self, previous: str | None, reason: str) -> ReloadResult:
        self.gateway.metrics.reloads.labels("refused").inc()
        logger.error("bundle reload refused, still serving %s: %s", previous, reason)
        return ReloadResult(False, previous, previous, reason)
