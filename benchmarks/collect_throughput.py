"""Throughput of the collector against a local OpenAI-compatible backend that answers instantly.

Measures, at each concurrency (default 1, 8, 32), calls per second of:

- ``collector``: ``collect_responses`` end to end (message building, retries wrapper, response checks,
  durable JSONL store with group-commit fsync, progress accounting) on text-only items;
- ``httpx shared``: a bare asyncio loop of N workers sharing one ``httpx.AsyncClient`` (the usual idiom);
- ``httpx per-worker``: the bare loop with one single-connection ``httpx.AsyncClient`` per worker;
- ``openai``: the bare loop with the official ``AsyncOpenAI`` client (``max_retries=0``), if installed.

The backend runs in a separate process (raw ASGI app under uvicorn) so it does not share the client's
event loop. Variants are timed round-robin and the median of --repeats runs is reported, so load from
other processes affects them alike. The per-call overhead is the collector's extra time per call
relative to the fastest bare loop, in client CPU time (robust to other load on the machine).

    .venv/bin/python benchmarks/collect_throughput.py [--calls 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from ecvl_router.collect import BackendConfig, BenchmarkItem, CollectionDir, collect_responses

ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short answer."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()


async def instant_backend(scope, receive, send) -> None:
    """A raw ASGI app: every request gets the same chat completion at once."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_backend(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "collect_throughput:instant_backend", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=Path(__file__).parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the benchmark backend did not start")


Timing = tuple[float, float]  # wall seconds, client CPU seconds (all threads)
Loop = Callable[[str, int, int], Awaitable[Timing]]
MESSAGES = [{"role": "user", "content": "What is shown in the picture?"}]


class Stopwatch:
    """Wall-clock and process CPU time of a block."""

    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


async def bare_loop(calls: int, concurrency: int, make_call: Callable[[int], Awaitable[None]]) -> Timing:
    pending = iter(range(calls))

    async def worker(index: int) -> None:
        for _ in pending:
            await make_call(index)

    with Stopwatch() as watch:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return watch.wall, watch.cpu


async def httpx_shared(base_url: str, calls: int, concurrency: int) -> Timing:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def call(_: int) -> None:
            response = await client.post(f"{base_url}/chat/completions", json={"model": "bench", "messages": MESSAGES})
            response.json()["choices"][0]["message"]["content"]

        return await bare_loop(calls, concurrency, call)


async def httpx_per_worker(base_url: str, calls: int, concurrency: int) -> Timing:
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) for _ in range(concurrency)]

    async def call(index: int) -> None:
        response = await clients[index].post(f"{base_url}/chat/completions", json={"model": "bench", "messages": MESSAGES})
        response.json()["choices"][0]["message"]["content"]

    try:
        return await bare_loop(calls, concurrency, call)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


async def openai_client(base_url: str, calls: int, concurrency: int) -> Timing:
    import openai

    client = openai.AsyncOpenAI(api_key="unused", base_url=base_url, max_retries=0)

    async def call(_: int) -> None:
        completion = await client.chat.completions.create(model="bench", messages=MESSAGES)
        completion.choices[0].message.content

    try:
        return await bare_loop(calls, concurrency, call)
    finally:
        await client.close()


async def collector(base_url: str, calls: int, concurrency: int) -> Timing:
    with tempfile.TemporaryDirectory() as folder:
        workspace = CollectionDir(Path(folder))
        items = workspace.add_items(
            (BenchmarkItem(f"q{i}", "bench", f"What is shown in picture {i}?", None, None) for i in range(calls)), dataset_name="bench"
        )
        backend = BackendConfig(name="bench", base_url=base_url, model="bench", max_concurrency=concurrency)
        with Stopwatch() as watch:
            (tally,) = await collect_responses(workspace, items, [backend], {"bench": None})
        assert tally.done == calls and tally.failed == 0, tally
        return watch.wall, watch.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per variant (median reported)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    loops: dict[str, Loop] = {"collector": collector, "httpx shared": httpx_shared, "httpx per-worker": httpx_per_worker}
    try:
        import openai  # noqa: F401

        loops["openai"] = openai_client
    except ImportError:
        print("openai is not installed: its loop is skipped")

    port = free_port()
    backend = start_backend(port)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        results: dict[tuple[str, int], list[float]] = {}
        for concurrency in args.concurrency:
            for name, loop in loops.items():  # warm-up
                asyncio.run(loop(base_url, min(200, args.calls), concurrency))
            for _ in range(args.repeats):
                for name, loop in loops.items():
                    results.setdefault((name, concurrency), []).append(asyncio.run(loop(base_url, args.calls, concurrency)))
    finally:
        backend.terminate()
        backend.wait()

    def median(name: str, concurrency: int, index: int) -> float:
        return statistics.median(timing[index] for timing in results[(name, concurrency)])

    print(f"\n{args.calls} calls per run, median of {args.repeats} runs")
    print("throughput (calls/s):")
    print(f"{'concurrency':>11} " + " ".join(f"{name:>17}" for name in loops) + f" {'collector/best bare':>20}")
    for concurrency in args.concurrency:
        rates = {name: args.calls / median(name, concurrency, 0) for name in loops}
        bare = max(rate for name, rate in rates.items() if name.startswith("httpx"))
        print(f"{concurrency:>11} " + " ".join(f"{rates[name]:17.0f}" for name in loops) + f" {rates['collector'] / bare:19.0%}")
    print("client CPU per call (µs, all threads; less sensitive to other load than throughput):")
    print(f"{'concurrency':>11} " + " ".join(f"{name:>17}" for name in loops) + f" {'collector overhead':>20}")
    for concurrency in args.concurrency:
        cpu = {name: median(name, concurrency, 1) / args.calls * 1e6 for name in loops}
        bare = min(value for name, value in cpu.items() if name.startswith("httpx"))
        print(f"{concurrency:>11} " + " ".join(f"{cpu[name]:17.0f}" for name in loops) + f" {cpu['collector'] - bare:17.0f} µs")
    at_32 = 32 if 32 in args.concurrency else args.concurrency[-1]
    for bare_name in ("httpx shared", "httpx per-worker"):
        share = median(bare_name, at_32, 0) / median("collector", at_32, 0)
        verdict = "meets" if share >= 0.9 else "misses"
        print(f"concurrency {at_32}: collector throughput = {share:.0%} of the bare '{bare_name}' loop ({verdict} the 90 % target)")

if __name__ == "__main__":
    main()
