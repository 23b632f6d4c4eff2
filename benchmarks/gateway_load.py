"""Load test of the routing gateway: decisions per second and added latency, closed and open loop, per encoder variant.

Starts two `ecvl-router backend-sim --latency-scale 0` processes (instant simulated VLMs), then, for each
gateway variant in turn (torch or ONNX encoders, embedding cache on or off), one `ecvl-router serve` process
with a router bundle on the real default encoders, and sends the same demo queries (question + image as a
data URI, or text only where an item has no image):

- closed loop: ``--requests`` requests by 1, 16 and 64 concurrent clients (each sends its next request when
  its answer arrived);
- open loop: Poisson arrivals at 25, 50 and 100 requests per second for ``--duration`` seconds, each request
  sent at its arrival time whatever the state of the others (latency counted from that time).

The loads take the queries in order, each load starting where the previous one stopped, as in one long stream
that repeats the demo's queries (with their images) every len(queries) requests: the cache's hit rate reflects
that repetition. The same loads are first sent straight to a backend (open loop for ``--direct-duration`` seconds). For each
load and variant it prints decisions per second (answered requests / wall time), added latency at p50,
p95 and p99 (the gateway's latency percentile minus the median of the direct calls under the same load), the decision's own time (p50 of
X-ECVL-Router-Ms, the batch it was made in), the batch-size distribution (X-ECVL-Batch-Size: mean, p50,
p95, max), the embedding cache's hit rate over the run (from /metrics), and the count of 5xx answers and
of failed connections. The load average is printed before each variant: the figures depend on what else
the machine runs.

    .venv/bin/python benchmarks/gateway_load.py --data /tmp/gw-demo --bundle runs/demo --onnx onnx-encoders/
    .venv/bin/python benchmarks/gateway_load.py --requests 300 --duration 10 --variants torch   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import yaml

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.serve import example_config

CLOUD, EDGE = DEMO_PAIRS[0]
CLI = str(Path(sys.executable).with_name("ecvl-router"))
VARIANTS = ("torch", "torch+cache", "onnx", "onnx+cache")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], health_url: str, log: Path, timeout: float = 600) -> subprocess.Popen:
    """An ``ecvl-router`` subcommand in its own process, once ``health_url`` answers 200."""
    process = subprocess.Popen([CLI, *args], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`ecvl-router {args[0]}` exited:\n{log.read_text()}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError(f"`ecvl-router {args[0]}` did not come up within {timeout:.0f} s:\n{log.read_text()}")


def prepare_bundle(work: Path, data: Path | None, bundle: Path | None, items: int) -> tuple[Path, Path]:
    if data is None:
        print(f"generating a {items}-item demo benchmark …", flush=True)
        data = generate_demo(work / "data", n_items=items, seed=0).out_dir
    if bundle is None:
        print("training a router bundle on the default encoders (MiniLM-L6, MobileNetV2) …", flush=True)
        bundle = work / "run"
        subprocess.run([CLI, "train", "--data", str(data), "--edge", EDGE, "--cloud", CLOUD, "--out", str(bundle),
                        "--epochs", "5", "--cache-dir", str(work / "cache")], check=True, capture_output=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return data, bundle


def queries(data: Path) -> list[list[dict]]:
    """The demo items as chat messages: the question, with the item's image as a data URI where it has one."""
    rsd = load_rsd(data)
    out = []
    for item in rsd.items.to_dict("records"):
        image = rsd.image_path(item["image"])
        if image is None:
            out.append([{"role": "user", "content": item["question"]}])
        else:
            uri = f"data:image/{'png' if image.suffix == '.png' else 'jpeg'};base64,{base64.b64encode(image.read_bytes()).decode()}"
            out.append([{"role": "user", "content": [{"type": "text", "text": item["question"]}, {"type": "image_url", "image_url": {"url": uri}}]}])
    return out


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    server_errors: int = 0
    other_errors: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def fail(self, kind: str) -> None:
        """Count a request that got no 200 and no 5xx: ``kind`` is its status or its client error."""
        self.other_errors += 1
        self.failures[kind] += 1

    def p(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies_ms if values is None else values
        return float(np.percentile(values, q)) if values else float("nan")

    def record(self, response: httpx.Response, started: float) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 500:
            self.server_errors += 1
        elif response.status_code != 200:
            self.fail(f"HTTP {response.status_code}")
        if "x-ecvl-router-ms" in response.headers:
            self.router_ms.append(float(response.headers["x-ecvl-router-ms"]))
            self.batch_sizes.append(int(response.headers["x-ecvl-batch-size"]))


def client(url: str, connections: int) -> httpx.AsyncClient:
    """An HTTP client with ``connections`` connections; a request unanswered after 120 s counts as failed."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=120)


async def closed_loop(url: str, model: str, messages: list[list[dict]], n: int, concurrency: int) -> Run:
    """``n`` chat requests by ``concurrency`` clients, each sending its next request once answered (queries in order)."""
    run, counter = Run(), iter(range(n))
    async with client(url, concurrency) as http:

        async def worker() -> None:
            for index in counter:
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/chat/completions", json={"model": model, "messages": messages[index % len(messages)]})
                except httpx.HTTPError as error:
                    run.fail(type(error).__name__)
                    continue
                run.record(response, started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - started
    return run


async def open_loop(url: str, model: str, messages: list[list[dict]], rate: float, duration: float, seed: int) -> Run:
    """Poisson arrivals at ``rate`` per second for ``duration`` seconds; latency from each arrival time."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, size=int(rate * duration * 2) + 10))
    arrivals = arrivals[arrivals < duration]
    run = Run()
    async with client(url, 2048) as http:
        began = time.perf_counter()

        async def one(index: int, at: float) -> None:
            await asyncio.sleep(max(0.0, began + at - time.perf_counter()))
            try:
                response = await http.post("/v1/chat/completions", json={"model": model, "messages": messages[index % len(messages)]})
            except httpx.HTTPError as error:
                run.fail(type(error).__name__)
                return
            run.record(response, began + at)

        await asyncio.gather(*(one(index, float(at)) for index, at in enumerate(arrivals)))
        run.seconds = time.perf_counter() - began
    return run


def cache_counts(url: str) -> tuple[float, float]:
    """Embedding-cache hits and misses so far, both encoders together, from /metrics."""
    hits = misses = 0.0
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("ecvl_router_embedding_cache_hits_total"):
            hits += float(line.rsplit(" ", 1)[1])
        elif line.startswith("ecvl_router_embedding_cache_misses_total"):
            misses += float(line.rsplit(" ", 1)[1])
    return hits, misses


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def gateway_config(work: Path, variant: str, bundle: Path, onnx: Path | None, ports: dict[str, int], args: argparse.Namespace) -> Path:
    config = yaml.safe_load(example_config())
    config.update(bundle=str(Path(bundle).resolve()), port=ports["gateway"], decision_log=None)
    config["edge"]["base_url"] = f"http://127.0.0.1:{ports['edge']}/v1"
    config["cloud"]["base_url"] = f"http://127.0.0.1:{ports['cloud']}/v1"
    config["batching"] = {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms}
    config["embedding_cache"] = {"max_mb": 64 if variant.endswith("+cache") else 0}
    if variant.startswith("onnx"):
        if onnx is None:
            raise SystemExit("the onnx variants need --onnx (a folder written by `ecvl-router export-encoders`)")
        config["encoders"] = str((onnx / "encoders.yaml").resolve())
    path = work / f"gateway-{variant}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the loads, the gateway's batching and encoders, and the data (shared with capture_overhead.py)."""
    parser.add_argument("--requests", type=int, default=2000, help="requests per closed-loop concurrency level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated closed-loop concurrency levels")
    parser.add_argument("--rates", default="25,50,100", help="comma-separated open-loop arrival rates (per second)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of each open-loop run")
    parser.add_argument("--onnx", type=Path, help="folder written by `ecvl-router export-encoders` (for the onnx variants)")
    parser.add_argument("--max-batch", type=int, default=16, help="the gateway's batching.max_batch")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="the gateway's batching.max_wait_ms")
    parser.add_argument("--scenario", default="quality", help="scenario of the gateway requests")
    parser.add_argument("--data", type=Path, help="demo benchmark folder (default: generate one)")
    parser.add_argument("--bundle", type=Path, help="router bundle trained on --data (default: train one)")
    parser.add_argument("--items", type=int, default=200, help="items of a generated demo benchmark")
    parser.add_argument("--seed", type=int, default=0, help="seed of the open-loop arrivals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--direct-duration", type=float, default=15, help="seconds of each open-loop run straight to a backend")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated gateway variants of {', '.join(VARIANTS)}")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes (serve --workers)")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",") if level]
    rates = [float(rate) for rate in args.rates.split(",") if rate]
    variants = [variant for variant in args.variants.split(",") if variant]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        work = Path(tmp)
        data, bundle = prepare_bundle(work, args.data, args.bundle, args.items)
        ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
        backends = []
        try:
            for role, model in (("edge", EDGE), ("cloud", CLOUD)):
                backends.append(start(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]),
                                       "--latency-scale", "0"], f"http://127.0.0.1:{ports[role]}/healthz", work / f"{role}.log"))
            messages = queries(data)
            direct_url, gateway_url = f"http://127.0.0.1:{ports['edge']}", f"http://127.0.0.1:{ports['gateway']}"
            loads = [("closed", level) for level in levels] + [("open", rate) for rate in rates]
            print(f"{len(messages)} demo queries ({sum(isinstance(m[0]['content'], list) for m in messages)} with an image), "
                  f"scenario {args.scenario}, {os.cpu_count()} CPU cores, batching max_batch {args.max_batch} max_wait_ms "
                  f"{args.max_wait_ms:g}, {args.workers} worker(s); closed loop {args.requests} requests per level, open loop "
                  f"{args.duration:g} s per rate\n", flush=True)
            asyncio.run(closed_loop(direct_url, EDGE, messages, 20, 1))
            stream = {}  # each load starts where the previous one stopped in the query list, as in one long stream
            start_at = 0
            for kind, level in loads:
                count = args.requests if kind == "closed" else int(level * args.duration * 1.2)
                stream[(kind, level)] = [messages[(start_at + i) % len(messages)] for i in range(count)]
                start_at += count
            direct = {}
            for kind, level in loads:
                direct[(kind, level)] = (asyncio.run(closed_loop(direct_url, EDGE, stream[(kind, level)], args.requests, int(level))) if kind == "closed"
                                         else asyncio.run(open_loop(direct_url, EDGE, stream[(kind, level)], level, args.direct_duration, args.seed)))
            header = (f"{'variant':>11} | {'load':>10} | {'decisions/s':>11} | {'added p50':>9} {'p95':>7} {'p99':>7} | {'decision p50':>12} | "
                      f"{'batch mean':>10} {'p50':>4} {'p95':>4} {'max':>4} | {'cache hits':>10} | {'5xx':>4} {'failed':>6}")
            rows = []
            for variant in variants:
                config = gateway_config(work, variant, bundle, args.onnx, ports, args)
                print(f"{variant}: starting the gateway (load average {load_average()}) …", flush=True)
                serve = ["serve", "--config", str(config)] + (["--workers", str(args.workers)] if args.workers > 1 else [])
                gateway = start(serve, gateway_url + "/healthz", work / f"gateway-{variant}.log")
                try:
                    asyncio.run(closed_loop(gateway_url, f"ecvl-router:{args.scenario}", messages[-20:], 20, 1))  # warm-up
                    for kind, level in loads:
                        before = cache_counts(gateway_url)
                        model = f"ecvl-router:{args.scenario}"
                        routed = (asyncio.run(closed_loop(gateway_url, model, stream[(kind, level)], args.requests, int(level))) if kind == "closed"
                                  else asyncio.run(open_loop(gateway_url, model, stream[(kind, level)], level, args.duration, args.seed)))
                        after = cache_counts(gateway_url)
                        looked_up = (after[0] - before[0]) + (after[1] - before[1])
                        base = direct[(kind, level)]
                        sizes = routed.batch_sizes or [0]
                        row = (f"{variant:>11} | {kind + ' ' + format(level, 'g'):>10} | {len(routed.latencies_ms) / routed.seconds:>11.1f} | "
                               f"{routed.p(50) - base.p(50):>9.1f} {routed.p(95) - base.p(50):>7.1f} {routed.p(99) - base.p(50):>7.1f} | "
                               f"{routed.p(50, routed.router_ms):>12.1f} | {np.mean(sizes):>10.1f} {np.percentile(sizes, 50):>4.0f} "
                               f"{np.percentile(sizes, 95):>4.0f} {max(sizes):>4d} | "
                               f"{(f'{100 * (after[0] - before[0]) / looked_up:.0f} %' if looked_up else '–'):>10} | "
                               f"{routed.server_errors:>4} {routed.other_errors:>6}")
                        rows.append(row)
                        print(row, flush=True)
                        if routed.failures:
                            print(f"{'':>11}   failed requests: {dict(routed.failures)}", flush=True)
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=60)
            print(f"\nload average at the end: {load_average()}\n\n{header}\n{'-' * len(header)}")
            print("\n".join(rows))
        finally:
            for process in backends:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
