"""Load test of the routing gateway: decisions per second and added latency, closed and open loop, per gateway variant.

Starts two `ecvl-router backend-sim --latency-scale 0` processes (instant simulated VLMs), then, for each
gateway variant in turn, one `ecvl-router serve` process with the configuration `serve --example-config`
prints (only the bundle, the ports and the backends' addresses changed) and a router bundle on the real default
encoders, and sends demo queries (question + image as a data URI, or text only where an item has no image):

- ``default``: the example configuration as it is: encoders in ONNX Runtime where it is installed (exported on
  the gateway's first start into ``encoder_runtime.cache_dir``), embedding cache on, decision log on;
- ``torch``: the same with ``encoder_runtime.engine: torch``;
- ``default-nocache``, ``torch-nocache``: the same without the embedding cache.

Loads:

- closed loop: ``--requests`` requests by 1, 16 and 64 concurrent clients (each sends its next request when
  its answer arrived);
- open loop: Poisson arrivals at 25, 50 and 100 requests per second for ``--duration`` seconds, each request
  sent at its arrival time whatever the state of the others (latency counted from that time).

The loads take the queries in order, each load starting where the previous one stopped, as in one long stream.
Queries are fresh: each request gets a small coloured block stamped into its image's corner (re-encoded in the
image's format) and its number appended to its question, so no request finds its image or its question in the
embedding cache (the demo's own repeated questions and images included). The same loads are first sent
straight to a backend (open loop for ``--direct-duration`` seconds). For each load and variant it prints
decisions per second (answered requests / wall time), added latency at p50, p95 and p99 (the gateway's latency
percentile minus the median of the direct calls under the same load), the decision's own time (p50 of
X-ECVL-Router-Ms, the batch it was made in), the batch-size distribution (X-ECVL-Batch-Size: mean, p50, p95,
max), the embedding cache's hit rate (from /metrics), the count of 5xx answers and of failed requests, and the
CPU time per answered request of the gateway's processes, of the two backends and of this load generator (from
/proc). The CPU model, the core count and the load average at the start and at the end are printed, and the
first variant is checked against the throughput targets (>= 100 decisions/s at 64 clients; at 50 requests/s
added p50 <= 40 ms and p99 <= 250 ms): the figures depend on what else the machine runs.

The load generator keeps its cost low, since it shares the cores with the gateway: request bodies are encoded
once, before the runs, and the connections are spread over several httpx clients of at most
``CONNECTIONS_PER_CLIENT`` each (``ClientPool``: httpx's pool scans all its connections on every request).

    .venv/bin/python benchmarks/gateway_load.py --data /tmp/gw-demo --bundle runs/demo
    .venv/bin/python benchmarks/gateway_load.py --requests 300 --duration 10 --variants default   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import yaml
from PIL import Image

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.openai_http.client_pool import ClientPool
from ecvl_router.serve import example_config

CLOUD, EDGE = DEMO_PAIRS[0]
CLI = str(Path(sys.executable).with_name("ecvl-router"))
VARIANTS = {
    "default": {},
    "torch": {"encoder_runtime": {"engine": "torch"}},
    "default-nocache": {"embedding_cache": {"max_mb": 0}},
    "torch-nocache": {"encoder_runtime": {"engine": "torch"}, "embedding_cache": {"max_mb": 0}},
}
CONNECTIONS_PER_CLIENT = 8
TARGET_RATE, TARGET_P50_MS, TARGET_P99_MS, TARGET_CLIENTS, TARGET_ARRIVALS = 100.0, 40.0, 250.0, 64, 50.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], health_url: str, log: Path, timeout: float = 900) -> subprocess.Popen:
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


@dataclass(frozen=True)
class DemoQuery:
    question: str
    image: bytes | None
    mime: str


def demo_queries(data: Path) -> list[DemoQuery]:
    """The demo items: the question and the image file's bytes (None where an item has no image)."""
    rsd = load_rsd(data)
    out = []
    for item in rsd.items.to_dict("records"):
        image = rsd.image_path(item["image"])
        mime = "image/png" if image is not None and image.suffix == ".png" else "image/jpeg"
        out.append(DemoQuery(item["question"], None if image is None else image.read_bytes(), mime))
    return out


def stamped(query: DemoQuery, number: int) -> DemoQuery:
    """``query`` made new: a 6 px block of a colour drawn from ``number`` in its image's corner (re-encoded in the same
    format), and the request number appended to its question."""
    question = f"{query.question} (request {number})"
    if query.image is None:
        return DemoQuery(question, None, query.mime)
    image = Image.open(io.BytesIO(query.image))
    image.load()
    rng = np.random.default_rng(number)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=len(image.getbands())))
    image.paste(colour if len(colour) > 1 else colour[0], (0, 0, 6, 6))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if query.mime == "image/png" else "JPEG", quality=90)
    return DemoQuery(question, buffer.getvalue(), query.mime)


def request_body(query: DemoQuery, model: str) -> bytes:
    if query.image is None:
        content: object = query.question
    else:
        uri = f"data:{query.mime};base64,{base64.b64encode(query.image).decode()}"
        content = [{"type": "text", "text": query.question}, {"type": "image_url", "image_url": {"url": uri}}]
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()


def fresh_stream(queries: list[DemoQuery], start_at: int, count: int) -> list[DemoQuery]:
    """Queries ``start_at`` .. ``start_at + count`` of the endless stream: the demo's queries in order, each stamped
    with its number."""
    return [stamped(queries[n % len(queries)], n) for n in range(start_at, start_at + count)]


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    server_errors: int = 0
    other_errors: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)

    def fail(self, kind: str) -> None:
        """Count a request that got no 200 and no 5xx: ``kind`` is its status or its client error."""
        self.other_errors += 1
        self.failures[kind] += 1

    def p(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies_ms if values is None else values
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def record(self, response: httpx.Response, started: float) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 500:
            self.server_errors += 1
        elif response.status_code != 200:
            self.fail(f"HTTP {response.status_code}")
        if "x-ecvl-router-ms" in response.headers:
            self.router_ms.append(float(response.headers["x-ecvl-router-ms"]))
            self.batch_sizes.append(int(response.headers["x-ecvl-batch-size"]))


def load_clients(url: str, connections: int) -> ClientPool:
    """The load generator's connections, CONNECTIONS_PER_CLIENT per client; a request unanswered after 120 s fails."""
    return ClientPool(connections, per_client=CONNECTIONS_PER_CLIENT, base_url=url, timeout=120)


async def post(pool: ClientPool, index: int, body: bytes) -> httpx.Response:
    """A chat request by client ``index`` modulo their number (a closed-loop worker or an open-loop request)."""
    http = pool.clients[index % len(pool.clients)]
    return await http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})


async def closed_loop(url: str, bodies: list[bytes], n: int, concurrency: int) -> Run:
    """``n`` chat requests by ``concurrency`` clients, each sending its next request once answered (bodies in order)."""
    run, counter = Run(), iter(range(n))
    async with load_clients(url, concurrency) as http:

        async def worker(client: int) -> None:
            for index in counter:
                started = time.perf_counter()
                try:
                    response = await post(http, client, bodies[index % len(bodies)])
                except httpx.HTTPError as error:
                    run.fail(type(error).__name__)
                    continue
                run.record(response, started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in range(concurrency)))
        run.seconds = time.perf_counter() - started
    return run


async def open_loop(url: str, bodies: list[bytes], rate: float, duration: float, seed: int) -> Run:
    """Poisson arrivals at ``rate`` per second for ``duration`` seconds; latency from each arrival time."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, size=int(rate * duration * 2) + 10))
    arrivals = arrivals[arrivals < duration]
    run = Run()
    async with load_clients(url, 2048) as http:
        began = time.perf_counter()

        async def one(index: int, at: float) -> None:
            await asyncio.sleep(max(0.0, began + at - time.perf_counter()))
            try:
                response = await post(http, index, bodies[index % len(bodies)])
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


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (unknown elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants, from /proc (0 where there is none)."""
    ticks, parents = os.sysconf("SC_CLK_TCK"), {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += parents.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in parents.items() if parent == current]
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(load: Callable[[], Run], processes: dict[str, list[int]]) -> Run:
    """``load()`` with the CPU time it cost each group of ``processes`` and this load generator, in ms per answered request."""
    before = {name: sum(map(tree_cpu_seconds, pids)) for name, pids in processes.items()} | {"load generator": own_cpu_seconds()}
    run = load()
    after = {name: sum(map(tree_cpu_seconds, pids)) for name, pids in processes.items()} | {"load generator": own_cpu_seconds()}
    answered = max(1, len(run.latencies_ms))
    run.cpu_ms = {name: 1000 * (after[name] - before[name]) / answered for name in after}
    return run


def gateway_config(work: Path, variant: str, bundle: Path, ports: dict[str, int], args: argparse.Namespace) -> Path:
    """The example configuration with the bundle, the ports, the backends and the variant's changes."""
    config = yaml.safe_load(example_config())
    config.update(bundle=str(Path(bundle).resolve()), port=ports["gateway"])
    config["edge"]["base_url"] = f"http://127.0.0.1:{ports['edge']}/v1"
    config["cloud"]["base_url"] = f"http://127.0.0.1:{ports['cloud']}/v1"
    if args.max_batch is not None:
        config["batching"]["max_batch"] = args.max_batch
    if args.max_wait_ms is not None:
        config["batching"]["max_wait_ms"] = args.max_wait_ms
    if args.in_flight is not None:
        config["batching"]["in_flight"] = args.in_flight
    if args.onnx_cache is not None:
        config["encoder_runtime"]["cache_dir"] = str(args.onnx_cache.resolve())
    for section, values in VARIANTS[variant].items():
        config[section] = {**config[section], **values}
    path = work / f"gateway-{variant}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def table_row(variant: str, kind: str, level: float, routed: Run, base: Run, hit_rate: str) -> str:
    sizes = routed.batch_sizes or [0]
    cpu = routed.cpu_ms
    return (f"{variant:>15} | {kind + ' ' + format(level, 'g'):>10} | {routed.rate:>11.1f} | "
            f"{routed.p(50) - base.p(50):>9.1f} {routed.p(95) - base.p(50):>7.1f} {routed.p(99) - base.p(50):>7.1f} | "
            f"{routed.p(50, routed.router_ms):>12.1f} | {np.mean(sizes):>10.1f} {np.percentile(sizes, 50):>4.0f} "
            f"{np.percentile(sizes, 95):>4.0f} {max(sizes):>4d} | {hit_rate:>10} | {routed.server_errors:>4} {routed.other_errors:>6} | "
            f"{cpu['gateway']:>7.2f} {cpu['backends']:>8.2f} {cpu['load generator']:>7.2f} {sum(cpu.values()):>6.2f}")


HEADER = (f"{'variant':>15} | {'load':>10} | {'decisions/s':>11} | {'added p50':>9} {'p95':>7} {'p99':>7} | {'decision p50':>12} | "
          f"{'batch mean':>10} {'p50':>4} {'p95':>4} {'max':>4} | {'cache hits':>10} | {'5xx':>4} {'failed':>6} | "
          f"{'CPU ms/request: gateway':>7} {'backends':>8} {'loadgen':>7} {'total':>6}")


def target_check(variant: str, results: dict[tuple[str, float], tuple[Run, Run]]) -> list[str]:
    """The throughput targets against the variant's runs at 64 clients and at 50 requests/s (where they were run)."""
    lines = []
    if ("closed", TARGET_CLIENTS) in results:
        rate = results[("closed", TARGET_CLIENTS)][0].rate
        lines.append(f"{variant}: {rate:.1f} decisions/s at {TARGET_CLIENTS} clients (target >= {TARGET_RATE:g}): "
                     + ("met" if rate >= TARGET_RATE else "NOT met"))
    if ("open", TARGET_ARRIVALS) in results:
        routed, base = results[("open", TARGET_ARRIVALS)]
        p50, p99 = routed.p(50) - base.p(50), routed.p(99) - base.p(50)
        met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        lines.append(f"{variant}: at {TARGET_ARRIVALS:g} requests/s added p50 {p50:.1f} ms, p99 {p99:.1f} ms (targets <= "
                     f"{TARGET_P50_MS:g} and <= {TARGET_P99_MS:g}): " + ("met" if met else "NOT met"))
    return lines


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the loads, the gateway's batching and encoders, and the data (shared with capture_overhead.py)."""
    parser.add_argument("--requests", type=int, default=2000, help="requests per closed-loop concurrency level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated closed-loop concurrency levels")
    parser.add_argument("--rates", default="25,50,100", help="comma-separated open-loop arrival rates (per second)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of each open-loop run")
    parser.add_argument("--onnx-cache", type=Path, help="encoder_runtime.cache_dir of the gateways (default: the configuration's default)")
    parser.add_argument("--max-batch", type=int, help="the gateway's batching.max_batch (default: the example configuration's)")
    parser.add_argument("--max-wait-ms", type=float, help="the gateway's batching.max_wait_ms (default: the example configuration's)")
    parser.add_argument("--in-flight", type=int, help="the gateway's batching.in_flight (default: the example configuration's)")
    parser.add_argument("--scenario", default="quality", help="scenario of the gateway requests")
    parser.add_argument("--data", type=Path, help="demo benchmark folder (default: generate one)")
    parser.add_argument("--bundle", type=Path, help="router bundle trained on --data (default: train one)")
    parser.add_argument("--items", type=int, default=600, help="items of a generated demo benchmark")
    parser.add_argument("--seed", type=int, default=0, help="seed of the open-loop arrivals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--direct-duration", type=float, default=15, help="seconds of each open-loop run straight to a backend")
    parser.add_argument("--variants", default="default,torch", help=f"comma-separated gateway variants of {', '.join(VARIANTS)}")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes (serve --workers)")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",") if level]
    rates = [float(rate) for rate in args.rates.split(",") if rate]
    variants = [variant for variant in args.variants.split(",") if variant]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    print(f"{cpu_model()}, {os.cpu_count()} CPU cores; load average at the start {load_average()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        work = Path(tmp)
        data, bundle = prepare_bundle(work, args.data, args.bundle, args.items)
        ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
        backends = []
        try:
            for role, model in (("edge", EDGE), ("cloud", CLOUD)):
                backends.append(start(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]),
                                       "--latency-scale", "0"], f"http://127.0.0.1:{ports[role]}/healthz", work / f"{role}.log"))
            queries = demo_queries(data)
            direct_url, gateway_url = f"http://127.0.0.1:{ports['edge']}", f"http://127.0.0.1:{ports['gateway']}"
            loads = [("closed", float(level)) for level in levels] + [("open", rate) for rate in rates]
            print(f"{len(queries)} demo queries ({sum(query.image is not None for query in queries)} with an image), each "
                  f"request made fresh; scenario {args.scenario}, {args.workers} worker(s); closed loop "
                  f"{args.requests} requests per level, open loop {args.duration:g} s per rate", flush=True)
            model = f"ecvl-router:{args.scenario}"
            streams: dict[tuple[str, float], list[DemoQuery]] = {}
            start_at = 0
            for kind, level in loads:
                count = args.requests if kind == "closed" else int(level * args.duration * 1.2)
                streams[(kind, level)] = fresh_stream(queries, start_at, count)
                start_at += count
            print(f"{start_at} request bodies encoded (load average {load_average()})\n", flush=True)
            gateway_bodies = {key: [request_body(query, model) for query in stream] for key, stream in streams.items()}
            direct_bodies = {key: [request_body(query, EDGE) for query in stream] for key, stream in streams.items()}
            backend_pids = {"backends": [process.pid for process in backends]}
            asyncio.run(closed_loop(direct_url, direct_bodies[loads[0]][:20], 20, 1))
            direct = {}
            for kind, level in loads:
                bodies = direct_bodies[(kind, level)]
                direct[(kind, level)] = (asyncio.run(closed_loop(direct_url, bodies, args.requests, int(level))) if kind == "closed"
                                         else asyncio.run(open_loop(direct_url, bodies, level, args.direct_duration, args.seed)))
            rows, checks = [], []
            for variant in variants:
                config = gateway_config(work, variant, bundle, ports, args)
                print(f"{variant}: starting the gateway (load average {load_average()}) …", flush=True)
                serve = ["serve", "--config", str(config)] + (["--workers", str(args.workers)] if args.workers > 1 else [])
                gateway = start(serve, gateway_url + "/healthz", work / f"gateway-{variant}.log")
                results = {}
                try:
                    asyncio.run(closed_loop(gateway_url, [request_body(query, model) for query in queries[-20:]], 20, 1))  # warm-up
                    for kind, level in loads:
                        bodies = gateway_bodies[(kind, level)]
                        before = cache_counts(gateway_url)

                        def load(kind: str = kind, level: float = level, bodies: list[bytes] = bodies) -> Run:
                            if kind == "closed":
                                return asyncio.run(closed_loop(gateway_url, bodies, args.requests, int(level)))
                            return asyncio.run(open_loop(gateway_url, bodies, level, args.duration, args.seed))

                        routed = measured(load, {"gateway": [gateway.pid], **backend_pids})
                        after = cache_counts(gateway_url)
                        looked_up = (after[0] - before[0]) + (after[1] - before[1])
                        hit_rate = f"{100 * (after[0] - before[0]) / looked_up:.0f} %" if looked_up else "–"
                        results[(kind, level)] = (routed, direct[(kind, level)])
                        rows.append(table_row(variant, kind, level, routed, direct[(kind, level)], hit_rate))
                        print(rows[-1], flush=True)
                        if routed.failures:
                            print(f"{'':>15}   failed requests: {dict(routed.failures)}", flush=True)
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=60)
                checks += target_check(variant, results)
            print(f"\n{cpu_model()}, {os.cpu_count()} CPU cores; load average at the end: {load_average()}\n\n{HEADER}\n{'-' * len(HEADER)}")
            print("\n".join(rows))
            print("\n" + "\n".join(checks))
        finally:
            for process in backends:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
