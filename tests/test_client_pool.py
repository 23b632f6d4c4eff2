"""ClientPool: a connection budget split over small httpx pools, handed out in turn, and never exceeded (loopback)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ecvl_router.openai_http.client_pool import ClientPool
from tests.serve_support import ThreadServer


@pytest.mark.parametrize(("connections", "per_client", "max_clients", "sizes"), [
    (100, 16, 16, [15, 15, 14, 14, 14, 14, 14]),
    (3, 16, 16, [3]),
    (1000, 16, 4, [250, 250, 250, 250]),
])
def test_the_budget_is_split_evenly_and_never_exceeded(connections: int, per_client: int, max_clients: int, sizes: list[int]) -> None:
    pool = ClientPool(connections, per_client=per_client, max_clients=max_clients)
    try:
        assert pool.sizes == sizes and len(pool.clients) == len(sizes)
    finally:
        asyncio.run(pool.aclose())


def test_clients_are_handed_out_in_turn() -> None:
    pool = ClientPool(6, per_client=2)
    try:
        turns = [pool.next() for _ in range(7)]
        assert turns[:3] == pool.clients and turns[3:6] == pool.clients and turns[6] is pool.clients[0]
    finally:
        asyncio.run(pool.aclose())


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="connections"):
        ClientPool(0)
    with pytest.raises(ValueError, match="per_client"):
        ClientPool(4, per_client=0)


def test_no_more_connections_than_the_budget_are_open_at_once() -> None:
    release, lock = threading.Event(), threading.Lock()
    seen = {"now": 0, "most": 0, "peers": set()}
    app = FastAPI()

    @app.get("/slow")
    async def slow(request: Request) -> JSONResponse:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
            seen["peers"].add(request.client.port)
        while not release.is_set():
            await asyncio.sleep(0.01)
        with lock:
            seen["now"] -= 1
        return JSONResponse({"ok": True})

    server = ThreadServer(app).start()

    async def many() -> list[int]:
        async with ClientPool(4, per_client=2, base_url=server.url, timeout=30) as pool:
            calls = [asyncio.create_task(pool.next().get("/slow")) for _ in range(10)]
            async with asyncio.timeout(30):
                while seen["now"] < 4:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # room for a fifth connection, were one allowed
            release.set()
            return [response.status_code for response in await asyncio.gather(*calls)]

    try:
        assert asyncio.run(many()) == [200] * 10
    finally:
        release.set()
        server.stop()
    assert seen["most"] == 4 and len(seen["peers"]) == 4  # the waiting calls reused the four connections
