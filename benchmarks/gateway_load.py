"""Load test of the routing gateway: added latency and throughput against instant local backends.

Starts two `ecvl-router backend-sim --latency-scale 0` processes (instant simulated VLMs) and one
`ecvl-router serve` process with a router bundle on the real default encoders, then sends the same demo
queries (question + image as a data URI, or text only) at each concurrency level, first straight to a
backend, then through the gateway. For each level it prints:

- latency p50/p95 of the direct calls and of the gateway calls (ms);
- added latency p50/p95: gateway minus direct, at the same percentile (routing decision included);
- the routing decision's own time (p50 of X-ECVL-Router-Ms) and the gateway's remaining overhead at the
  median: gateway p50 of (latency - decision time) minus direct p50; at concurrency > 1 requests also
  wait for the router thread, and that queueing shows in the added latency, not in the decision time;
- the gateway event loop's CPU time per request (its own work: parsing, checks, forwarding, answering;
  the decision runs in other threads), read from /proc on Linux: unlike latencies, it hardly depends on
  what else the machine is running;
- requests per second through the gateway, and the count of 5xx answers and of failed connections.

    .venv/bin/python benchmarks/gateway_load.py                     # 2,000 requests per level: 1, 16, 64
    .venv/bin/python benchmarks/gateway_load.py --requests 200      # a quick run
    .venv/bin/python benchmarks/gateway_load.py --bundle runs/demo --data demo-data --text-only
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


def loop_cpu_ms(pid: int) -> float:
    """CPU time (user + system) of a process's main thread, in ms; NaN where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


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


def queries(data: Path, text_only: bool) -> list[list[dict]]:
    """The demo items as chat messages: the question, with the item's image as a data URI unless text-only."""
    rsd = load_rsd(data)
    out = []
    for item in rsd.items.to_dict("records"):
        image = rsd.image_path(item["image"])
        if text_only or image is None:
            out.append([{"role": "user", "content": item["question"]}])
        else:
            uri = f"data:image/{'png' if image.suffix == '.png' else 'jpeg'};base64,{base64.b64encode(image.read_bytes()).decode()}"
            out.append([{"role": "user", "content": [{"type": "text", "text": item["question"]}, {"type": "image_url", "image_url": {"url": uri}}]}])
    return out


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)
    server_errors: int = 0
    other_errors: int = 0
    seconds: float = 0.0

    def p(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies_ms if values is None else values
        return float(np.percentile(values, q)) if values else float("nan")


async def load(url: str, model: str, messages: list[list[dict]], n: int, concurrency: int) -> Run:
    """``n`` chat requests by ``concurrency`` workers; latency is send to last byte."""
    run = Run()
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:

        async def worker() -> None:
            for index in counter:
                body = {"model": model, "messages": messages[index % len(messages)]}
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    run.other_errors += 1
                    continue
                run.latencies_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code >= 500:
                    run.server_errors += 1
                elif response.status_code != 200:
                    run.other_errors += 1
                if "x-ecvl-router-ms" in response.headers:
                    run.router_ms.append(float(response.headers["x-ecvl-router-ms"]))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - started
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level and target")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--scenario", default="quality", help="scenario of the gateway requests")
    parser.add_argument("--data", type=Path, help="demo benchmark folder (default: generate one)")
    parser.add_argument("--bundle", type=Path, help="router bundle trained on --data (default: train one)")
    parser.add_argument("--items", type=int, default=200, help="items of a generated demo benchmark")
    parser.add_argument("--text-only", action="store_true", help="send the questions without their images")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="gateway-load-") as tmp:
        work = Path(tmp)
        data, bundle = prepare_bundle(work, args.data, args.bundle, args.items)
        ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
        processes = []
        try:
            for role, model in (("edge", EDGE), ("cloud", CLOUD)):
                processes.append(start(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]),
                                        "--latency-scale", "0"], f"http://127.0.0.1:{ports[role]}/healthz", work / f"{role}.log"))
            config = yaml.safe_load(example_config())
            config.update(bundle=str(Path(bundle).resolve()), port=ports["gateway"], decision_log=None)
            config["edge"]["base_url"] = f"http://127.0.0.1:{ports['edge']}/v1"
            config["cloud"]["base_url"] = f"http://127.0.0.1:{ports['cloud']}/v1"
            (work / "gateway.yaml").write_text(yaml.safe_dump(config))
            print("starting the gateway (loading the bundle and its encoders) …", flush=True)
            gateway = start(["serve", "--config", str(work / "gateway.yaml")], f"http://127.0.0.1:{ports['gateway']}/healthz", work / "gateway.log")
            processes.append(gateway)
            messages = queries(data, args.text_only)
            direct_url, gateway_url = f"http://127.0.0.1:{ports['edge']}", f"http://127.0.0.1:{ports['gateway']}"
            asyncio.run(load(gateway_url, f"ecvl-router:{args.scenario}", messages, 20, 1))  # warm-up
            asyncio.run(load(direct_url, EDGE, messages, 20, 1))
            print(f"\n{args.requests} requests per level, {'text only' if args.text_only else 'question + image'}, "
                  f"scenario {args.scenario}, {os.cpu_count()} CPU cores\n")
            header = (f"{'conc':>4} | {'direct p50':>10} {'p95':>7} | {'gateway p50':>11} {'p95':>8} | {'added p50':>9} {'p95':>8} | "
                      f"{'decision p50':>12} {'overhead p50':>12} {'loop CPU/req':>12} | {'req/s':>7} {'direct req/s':>12} | {'5xx':>4} {'failed':>6}")
            print(header + "\n" + "-" * len(header))
            for concurrency in levels:
                direct = asyncio.run(load(direct_url, EDGE, messages, args.requests, concurrency))
                cpu_before = loop_cpu_ms(gateway.pid)
                routed = asyncio.run(load(gateway_url, f"ecvl-router:{args.scenario}", messages, args.requests, concurrency))
                loop_cpu = (loop_cpu_ms(gateway.pid) - cpu_before) / args.requests
                beyond = [lat - r for lat, r in zip(routed.latencies_ms, routed.router_ms)]
                print(
                    f"{concurrency:>4} | {direct.p(50):>10.1f} {direct.p(95):>7.1f} | {routed.p(50):>11.1f} {routed.p(95):>8.1f} | "
                    f"{routed.p(50) - direct.p(50):>9.1f} {routed.p(95) - direct.p(95):>8.1f} | "
                    f"{statistics.median(routed.router_ms) if routed.router_ms else float('nan'):>12.1f} "
                    f"{routed.p(50, beyond) - direct.p(50):>12.1f} {loop_cpu:>12.2f} | {len(routed.latencies_ms) / routed.seconds:>7.1f} "
                    f"{len(direct.latencies_ms) / direct.seconds:>12.1f} | {routed.server_errors:>4} {routed.other_errors:>6}",
                    flush=True,
                )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
