"""What capture and shadowing cost the client: added latency of a gateway capturing at ``--sample`` with shadow calls.

Uses the machinery of benchmarks/gateway_load.py (the same backends, bundle, queries, loads and gateway
configuration): two `ecvl-router backend-sim --latency-scale 0` processes, then two `ecvl-router serve`
processes on the same bundle and encoders, one without capture and one with ``capture: {sample: 0.05, shadow:
true}``. Each round sends every load (closed loop at ``--concurrency``, open loop at ``--rates``) to one
gateway and then the same requests to the other (the order alternates between rounds), waiting for the
capturing gateway's shadow queue to drain before the next load. For each load it prints the latency p50 and
p95 of both, the capture's added p50 and p95 (median over rounds of the per-round differences), the
captures written, shadow calls made and dropped, and 5xx or failed requests. The load average is printed
per round: the figures depend on what else the machine runs.

    .venv/bin/python benchmarks/capture_overhead.py --data /tmp/gw-demo --bundle runs/demo
    .venv/bin/python benchmarks/capture_overhead.py --requests 200 --duration 10 --rounds 1   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from gateway_load import (CLOUD, EDGE, VARIANTS, DemoQuery, Run, add_load_arguments, closed_loop, demo_queries, free_port, fresh_stream,
                          gateway_config, load_average, open_loop, prepare_bundle, request_body, start)

Load = tuple[str, float]


def metric_sum(url: str, prefix: str) -> float:
    """The sum of the samples of ``/metrics`` whose name (and labels) start with ``prefix``."""
    lines = httpx.get(url + "/metrics", timeout=30).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def capture_config(plain: Path, capture_dir: Path, sample: float, port: int) -> Path:
    """The configuration at ``plain`` with a capture section, on another port."""
    config = yaml.safe_load(plain.read_text())
    config.update(port=port, capture={"dir": str(capture_dir), "sample": sample, "shadow": True})
    path = plain.with_name(plain.stem + "-capture.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def send(url: str, load: Load, bodies: list[bytes], args: argparse.Namespace) -> Run:
    kind, level = load
    if kind == "closed":
        return asyncio.run(closed_loop(url, bodies, args.requests, int(level)))
    return asyncio.run(open_loop(url, bodies, level, args.duration, args.seed))


def wait_for_shadows(url: str, timeout: float = 300) -> None:
    """Until the capturing gateway's shadow queue is empty (its calls then no longer load the machine)."""
    deadline = time.monotonic() + timeout
    while metric_sum(url, "ecvl_router_shadow_queue") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every load on both gateways")
    parser.add_argument("--sample", type=float, default=0.05, help="the capturing gateway's capture.sample")
    parser.add_argument("--variant", default="default", choices=VARIANTS, help="encoder variant of both gateways")
    args = parser.parse_args()
    loads: list[Load] = [("closed", float(level)) for level in args.concurrency.split(",") if level]
    loads += [("open", float(rate)) for rate in args.rates.split(",") if rate]

    with tempfile.TemporaryDirectory(prefix="capture-overhead-") as tmp:
        work = Path(tmp)
        data, bundle = prepare_bundle(work, args.data, args.bundle, args.items)
        ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
        processes = []
        try:
            for role, model in (("edge", EDGE), ("cloud", CLOUD)):
                processes.append(start(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]),
                                        "--latency-scale", "0"], f"http://127.0.0.1:{ports[role]}/healthz", work / f"{role}.log"))
            plain = gateway_config(work, args.variant, bundle, ports, args)
            capturing_port = free_port()
            captured = capture_config(plain, work / "capture", args.sample, capturing_port)
            urls = {"off": f"http://127.0.0.1:{ports['gateway']}", "capture": f"http://127.0.0.1:{capturing_port}"}
            print(f"starting both gateways ({args.variant}; capture sample {args.sample:g} with shadow) …", flush=True)
            for name, config in (("off", plain), ("capture", captured)):
                processes.append(start(["serve", "--config", str(config)], urls[name] + "/healthz", work / f"gateway-{name}.log"))
            measure(urls, loads, demo_queries(data), args)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=60)


def measure(urls: dict[str, str], loads: list[Load], queries: list[DemoQuery], args: argparse.Namespace) -> None:
    model = f"ecvl-router:{args.scenario}"
    for url in urls.values():
        asyncio.run(closed_loop(url, [request_body(query, model) for query in queries[-20:]], 20, 1))  # warm-up
    print(f"{len(queries)} demo queries (each request made fresh, the same to both gateways), scenario {args.scenario}, {args.rounds} round(s); closed loop {args.requests} requests "
          f"per level, open loop {args.duration:g} s per rate\n", flush=True)
    runs: dict[tuple[str, Load], list[Run]] = {}
    counts: dict[Load, list[float]] = {}
    start_at = 0
    for round_index in range(args.rounds):
        print(f"round {round_index + 1}: load average {load_average()}", flush=True)
        for load in loads:
            count = args.requests if load[0] == "closed" else int(load[1] * args.duration * 1.2)
            bodies = [request_body(query, model) for query in fresh_stream(queries, start_at, count)]
            start_at += count
            before = [metric_sum(urls["capture"], name) for name in _COUNTED]
            for name in (("off", "capture") if round_index % 2 == 0 else ("capture", "off")):
                runs.setdefault((name, load), []).append(send(urls[name], load, bodies, args))
                if name == "capture":
                    wait_for_shadows(urls["capture"])
            after = [metric_sum(urls["capture"], name) for name in _COUNTED]
            counts[load] = [total + a - b for total, a, b in zip(counts.get(load, [0.0] * len(_COUNTED)), after, before)]
    report(runs, counts, loads)


_COUNTED = ("ecvl_router_captures_total", "ecvl_router_shadow_calls_total", "ecvl_router_shadow_dropped_total")


def report(runs: dict[tuple[str, Load], list[Run]], counts: dict[Load, list[float]], loads: list[Load]) -> None:
    header = (f"{'load':>10} | {'p50 off':>8} {'capture':>8} | {'p95 off':>8} {'capture':>8} | {'added p50':>9} {'p95':>7} | "
              f"{'captures':>8} {'shadows':>7} {'dropped':>7} | {'5xx':>4} {'failed':>6}")
    print(f"\nload average at the end: {load_average()}\n\n{header}\n{'-' * len(header)}")
    for load in loads:
        off, on = runs[("off", load)], runs[("capture", load)]
        added50 = statistics.median(b.p(50) - a.p(50) for a, b in zip(off, on))
        added95 = statistics.median(b.p(95) - a.p(95) for a, b in zip(off, on))
        captures, shadows, dropped = counts[load]
        errors = sum(run.server_errors for run in off + on), sum(run.other_errors for run in off + on)
        print(f"{load[0] + ' ' + format(load[1], 'g'):>10} | {statistics.median(r.p(50) for r in off):>8.1f} "
              f"{statistics.median(r.p(50) for r in on):>8.1f} | {statistics.median(r.p(95) for r in off):>8.1f} "
              f"{statistics.median(r.p(95) for r in on):>8.1f} | {added50:>9.2f} {added95:>7.2f} | {captures:>8.0f} {shadows:>7.0f} "
              f"{dropped:>7.0f} | {errors[0]:>4} {errors[1]:>6}")
    print("\nlatencies in ms; added = capturing gateway minus the gateway without capture, same requests, median over rounds")


if __name__ == "__main__":
    main()
