"""What conversation stickiness adds to one turn: the conversation's key, the route store, the streamed answer.

Times, per turn and over --runs repetitions (medians and p95 in microseconds):

- the key of a conversation of 1, 5 and 20 turns (history hash, an image of about 200 KB in the first user turn
  as a data URI, answers of 60 words), and the keys kept after the answer;
- one lookup and one write in the memory store, and in Redis on 127.0.0.1 (a redis-server started in a
  temporary folder on a free port; skipped when the binary is not installed);
- putting a streamed answer of 300 chunks together (``AnswerTranscript``), per answer.

    .venv/bin/python benchmarks/stickiness_overhead.py [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import numpy as np

from ecvl_router.serve.config import StickinessPolicy
from ecvl_router.serve.conversation_keys import AnswerTranscript, conversation_key
from ecvl_router.serve.route_store import MemoryRouteStore, RedisRouteStore, RouteStore, RouteStoreUnavailable

ANSWER = " ".join(["word"] * 60)


def conversation(turns: int, image: str) -> list[dict]:
    """``turns`` user turns, the first with the image, each but the last answered."""
    messages: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
    for turn in range(turns):
        content: object = f"Question {turn}: what is in the picture, and why?"
        if turn == 0:
            content = [{"type": "text", "text": content}, {"type": "image_url", "image_url": {"url": image}}]
        messages.append({"role": "user", "content": content})
        if turn < turns - 1:
            messages.append({"role": "assistant", "content": f"{ANSWER} ({turn})"})
    return messages


def stream(chunks: int) -> list[bytes]:
    events = [{"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {"content": f" token{i}"}}]} for i in range(chunks)]
    return [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events] + [b"data: [DONE]\n\n"]


def report(label: str, samples: list[float]) -> None:
    values = np.array(samples) * 1e6
    print(f"{label:36s} median {np.median(values):9.1f} us   p95 {np.percentile(values, 95):9.1f} us")


def timed(function: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


async def timed_async(function: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await function()
        samples.append(time.perf_counter() - started)
    return samples


async def store_turn(store: RouteStore, key: str) -> None:
    await store.get(key)
    await store.set([key], "cloud")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def time_stores(runs: int) -> None:
    memory = MemoryRouteStore(100_000, 3600)
    report("memory store, lookup + write", await timed_async(lambda: store_turn(memory, "k"), runs))
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis store: skipped (redis-server is not installed)")
        return
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""],
                                  stdout=subprocess.DEVNULL)
        try:
            policy = StickinessPolicy(store="redis", url=f"redis://127.0.0.1:{port}/0", timeout_s=2, retry_after_s=0)
            store = RedisRouteStore.from_policy(policy)
            for _ in range(200):
                try:
                    await store.get("warm-up")
                    break
                except RouteStoreUnavailable:  # not listening yet
                    await asyncio.sleep(0.05)
            report("redis store, lookup + write", await timed_async(lambda: store_turn(store, "k"), runs))
            await store.aclose()
        finally:
            server.terminate()
            server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    runs = parser.parse_args().runs
    image = "data:image/jpeg;base64," + base64.b64encode(os.urandom(200_000)).decode()
    print(f"cpu: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (figures measured under that load)")
    answer = {"role": "assistant", "content": ANSWER}
    for turns in (1, 5, 20):
        body = {"model": "ecvl-router", "messages": conversation(turns, image)}
        samples = timed(lambda: conversation_key(body, None, ["header", "metadata", "user", "history"]).after([answer]), runs)
        report(f"history key, {turns} turn(s), image", samples)
    asyncio.run(time_stores(runs))
    chunks = stream(300)

    def transcribe() -> None:
        transcript = AnswerTranscript()
        for chunk in chunks:
            transcript.feed(chunk)
        transcript.messages()

    report("streamed answer, 300 chunks", timed(transcribe, max(10, runs // 10)))


if __name__ == "__main__":
    main()
