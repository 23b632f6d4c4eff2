"""Where the gateway keeps conversations' routes: in this process's memory, or in Redis (shared, with a TTL).

A store maps a conversation key to the route ("edge" or "cloud") that keeps it. Every write restarts the
key's time to live, so a route is forgotten ``ttl_s`` after its conversation's last turn. A Redis store
that fails raises :class:`RouteStoreUnavailable`, and then skips Redis for ``retry_after_s`` (raising at
once), so that a store that is down costs requests no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, get_args

from cachetools import TTLCache
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ecvl_router.serve.config import StickinessPolicy
from ecvl_router.serve.conversation import Route

_ROUTES = frozenset(get_args(Route))


class RouteStoreUnavailable(Exception):
    """The store could not be read or written (the message says why)."""


class RouteStore(Protocol):
    """Routes by conversation key."""

    async def get(self, key: str) -> Route | None:
        """The route kept under ``key`` (None: none, or it expired)."""
        ...

    async def set(self, keys: Sequence[str], route: Route) -> None:
        """Keep ``route`` under every key of ``keys``, each for the store's time to live."""
        ...

    async def aclose(self) -> None:
        ...


class MemoryRouteStore:
    """This process's routes: an LRU cache of ``max_entries`` whose entries expire ``ttl_s`` after their last write."""

    def __init__(self, max_entries: int, ttl_s: float, *, timer: Callable[[], float] = time.monotonic) -> None:
        self._routes: TTLCache[str, Route] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=timer)

    def __len__(self) -> int:
        return len(self._routes)

    async def get(self, key: str) -> Route | None:
        return self._routes.get(key)

    async def set(self, keys: Sequence[str], route: Route) -> None:
        for key in keys:
            self._routes.pop(key, None)  # a write restarts the entry's time to live
            self._routes[key] = route

    async def aclose(self) -> None:
        self._routes.clear()


class RedisRouteStore:
    """Routes in Redis under ``key_prefix + key``, each expiring ``ttl_s`` after its last write (``SET ... PX``)."""

    def __init__(self, client: Redis, *, key_prefix: str, ttl_s: float, retry_after_s: float) -> None:
        self._client = client
        self._prefix = key_prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._retry_after_s = retry_after_s
        self._down_until = 0.0

    @classmethod
    def from_policy(cls, policy: StickinessPolicy) -> RedisRouteStore:
        """A store on ``policy.url`` (connected on first use); calls give up after ``timeout_s``, retried once at once."""
        assert policy.url is not None
        client = Redis.from_url(
            policy.url,
            password=policy.password(),
            socket_timeout=policy.timeout_s,
            socket_connect_timeout=policy.timeout_s,
            retry=Retry(NoBackoff(), 1),  # once more on a fresh connection: a restarted Redis drops pooled ones
        )
        return cls(client, key_prefix=policy.key_prefix, ttl_s=policy.ttl_s, retry_after_s=policy.retry_after_s)

    async def get(self, key: str) -> Route | None:
        self._check_up()
        try:
            value = await self._client.get(self._prefix + key)
        except (RedisError, OSError) as error:
            raise self._failed(error) from None
        route = value.decode("ascii", "replace") if isinstance(value, bytes) else None
        return route if route in _ROUTES else None  # type: ignore[return-value]

    async def set(self, keys: Sequence[str], route: Route) -> None:
        if not keys:
            return
        self._check_up()
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for key in keys:
                    pipeline.set(self._prefix + key, route, px=self._ttl_ms)
                await pipeline.execute()
        except (RedisError, OSError) as error:
            raise self._failed(error) from None

    async def aclose(self) -> None:
        await self._client.aclose()

    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise RouteStoreUnavailable(f"Redis failed less than {self._retry_after_s:g} s ago")

    def _failed(self, error: Exception) -> RouteStoreUnavailable:
        self._down_until = time.monotonic() + self._retry_after_s
        return RouteStoreUnavailable(f"Redis: {type(error).__name__}: {error}")


def route_store(policy: StickinessPolicy) -> RouteStore:
    """The store ``policy`` names."""
    if policy.store == "redis":
        return RedisRouteStore.from_policy(policy)
    return MemoryRouteStore(policy.max_entries, policy.ttl_s)
