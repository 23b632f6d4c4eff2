"""Memory of one gateway process: resident set after startup and its peak under load (to size containers).

Starts two instant `backend-sim` processes and one `ecvl-router serve` with the example configuration's
defaults (ONNX Runtime encoders where installed, a 64 MiB embedding cache), then sends ``--requests`` demo queries with their
images by ``--concurrency`` clients, each made fresh as `benchmarks/gateway_load.py` makes them. Prints the gateway's resident
memory (VmRSS) after startup and after the load, and its peak (VmHWM), from /proc; Linux only.

    .venv/bin/python benchmarks/gateway_memory.py --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from gateway_load import CLOUD, EDGE, closed_loop, demo_queries, free_port, fresh_stream, gateway_config, prepare_bundle, request_body, start


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of process ``pid`` in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests sent after startup")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--data", type=Path, help="demo benchmark folder (default: generate one)")
    parser.add_argument("--bundle", type=Path, help="router bundle trained on --data (default: train one)")
    parser.add_argument("--items", type=int, default=200, help="items of a generated demo benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-memory-") as tmp:
        work = Path(tmp)
        data, bundle = prepare_bundle(work, args.data, args.bundle, args.items)
        ports = {"edge": free_port(), "cloud": free_port(), "gateway": free_port()}
        processes = [start(["backend-sim", "--data", str(data), "--model", model, "--port", str(ports[role]), "--latency-scale", "0"],
                           f"http://127.0.0.1:{ports[role]}/healthz", work / f"{role}.log") for role, model in (("edge", EDGE), ("cloud", CLOUD))]
        try:
            settings = argparse.Namespace(max_batch=None, max_wait_ms=None, in_flight=None, onnx_cache=work / "onnx")
            config = gateway_config(work, "default", bundle, ports, settings)
            url = f"http://127.0.0.1:{ports['gateway']}"
            gateway = start(["serve", "--config", str(config)], url + "/healthz", work / "gateway.log")
            processes.append(gateway)
            started = memory_mib(gateway.pid)
            messages = demo_queries(data)
            bodies = [request_body(query, "ecvl-router") for query in fresh_stream(messages, 0, args.requests)]
            run = asyncio.run(closed_loop(url, bodies, args.requests, args.concurrency))
            loaded = memory_mib(gateway.pid)
            print(f"{len(messages)} demo queries (each request made fresh), {args.requests} requests by {args.concurrency} clients "
                  f"({len(run.latencies_ms)} answered, {run.server_errors} 5xx, {run.other_errors} failed)")
            print(f"gateway resident memory: {started['VmRSS']:.0f} MiB after startup, {loaded['VmRSS']:.0f} MiB after the load, "
                  f"peak {loaded['VmHWM']:.0f} MiB")
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=60)


if __name__ == "__main__":
    main()
