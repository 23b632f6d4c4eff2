"""Several small httpx connection pools in place of one large one.

On every request, httpx's pool looks at each connection it holds (a poll of every idle socket to see whether
the server closed it), so the cost of a request grows with the pool: with 64 requests in flight to one
backend, httpx took 12 % of the gateway's CPU samples in one pool and 4 % split into pools of 16. A
:class:`ClientPool` spreads a connection budget over clients of at most ``per_client`` connections each and
hands them out in turn.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx

PER_CLIENT = 16
MAX_CLIENTS = 16


class ClientPool:
    """``httpx.AsyncClient`` s sharing ``connections`` connections in all (each with the same ``options``).

    At most ``max_clients`` clients (each costs milliseconds to create); the budget is split among them as
    evenly as it goes, so no more than ``connections`` are ever open. One TLS context serves them all.
    """

    def __init__(self, connections: int, *, per_client: int = PER_CLIENT, max_clients: int = MAX_CLIENTS, **options: Any) -> None:
        if connections < 1 or per_client < 1 or max_clients < 1:
            raise ValueError(f"connections, per_client and max_clients must be >= 1, got {connections}, {per_client}, {max_clients}")
        count = min(max_clients, -(-connections // per_client))
        if "verify" not in options:
            options["verify"] = httpx.create_ssl_context(trust_env=options.get("trust_env", True))
        self.sizes = [connections // count + (index < connections % count) for index in range(count)]  # connections per client
        self.clients = [
            httpx.AsyncClient(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size), **options) for size in self.sizes
        ]
        self._turns = itertools.count()

    def next(self) -> httpx.AsyncClient:
        """The client whose turn it is (round robin)."""
        return self.clients[next(self._turns) % len(self.clients)]

    async def aclose(self) -> None:
        """Close every client and its connections."""
        await asyncio.gather(*(client.aclose() for client in self.clients))

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
