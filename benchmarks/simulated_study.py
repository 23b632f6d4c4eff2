"""A short online study with simulated participants, through the real gateway, then `ecvl-router study-report`.

Starts `ecvl-router study-demo` (the demo benchmark, the ECVL and win-soft(1) routers for Quality-first MES 7
and Speed-first MES 5, two backend-sims with the demo's recorded latencies, the gateway with /study), then
lets simulated participants use the study's HTTP API as the page does: each starts a session per scenario
(the gateway assigns the policy), asks questions about test-split items of the demo benchmark (uploading the
item's image), reads the streamed answer and rates it with the demo dataset's judge score of the answer it
read (the recorded response with the same text; the mean when both models recorded that text). Finally it
writes the report with `ecvl-router study-report` and prints its summary.

Every figure comes from simulated VLMs. The study's database is started afresh in OUT; data and routers
are reused.

    .venv/bin/python benchmarks/simulated_study.py --out simulated-study --participants 8 --queries 10
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS

CLOUD, EDGE = DEMO_PAIRS[0]
SCENARIOS = ("quality", "speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("simulated-study"))
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--queries", type=int, default=10, help="questions per participant and scenario")
    parser.add_argument("--items", type=int, default=800, help="demo benchmark items")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-scale", type=float, default=1.0)
    args = parser.parse_args()
    out = args.out.absolute()
    for stale in ("study.db", "study.db-wal", "study.db-shm", "decisions.jsonl"):
        (out / stale).unlink(missing_ok=True)
    for stale in ("study-images", "report"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    port = free_port_block()
    command = [str(Path(sys.executable).with_name("ecvl-router")), "study-demo", "--out", str(out), "--items", str(args.items),
               "--seed", str(args.seed), "--port", str(port), "--latency-scale", str(args.latency_scale)]
    log = open(out / "study-demo.log", "wb")
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, url, out / "study-demo.log")
        print(f"study-demo serving at {url}/study after {time.perf_counter() - started:.0f} s (data and routers prepared or reused)")
        rsd = load_rsd(out / "data")
        test_items = json.loads((out / "runs" / "ecvl-quality" / "split.json").read_text())["test"]
        items = rsd.items.set_index("item_id").loc[test_items]
        recorded = rsd.responses[rsd.responses["model"].isin([EDGE, CLOUD])].set_index(["item_id", "model"])
        study_started = time.perf_counter()
        with ThreadPoolExecutor(args.participants) as pool:
            runs = list(pool.map(lambda index: participant(url, index, args, items, recorded, rsd), range(args.participants)))
        wall = time.perf_counter() - study_started
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    outcomes = Counter(outcome for run in runs for outcome in run["outcomes"])
    latencies = np.array([ms for run in runs for ms in run["client_ms"]]) / 1000
    print(f"{args.participants} participants x {len(SCENARIOS)} scenarios x {args.queries} questions in {wall:.1f} s: "
          + ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())))
    print(f"answer time seen by the participants: mean {latencies.mean():.2f} s, median {np.median(latencies):.2f} s, "
          f"P90 {np.percentile(latencies, 90):.2f} s")
    report = subprocess.run([str(Path(sys.executable).with_name("ecvl-router")), "study-report", str(out / "study.db"),
                             "--out", str(out / "report")], capture_output=True, text=True)
    print(report.stdout + report.stderr)
    if report.returncode == 0:
        print((out / "report" / "study_report.md").read_text())


def participant(url: str, index: int, args: argparse.Namespace, items, recorded, rsd) -> dict:
    """One simulated participant: a session per scenario, ``args.queries`` questions each, every answer rated."""
    rng = np.random.default_rng([args.seed, index])
    name = f"sim-{index + 1:02d}"
    outcomes, client_ms = [], []
    with httpx.Client(base_url=url + "/study/api", timeout=120) as client:
        for scenario in SCENARIOS:
            session = client.post("/sessions", json={"participant": name, "scenario": scenario}).raise_for_status().json()
            for item_id in rng.choice(items.index.to_numpy(), size=args.queries, replace=False):
                item = items.loc[item_id]
                body = {"question": item["question"]}
                if isinstance(item["image"], str):
                    path = rsd.image_path(item["image"])
                    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
                    body |= {"image": f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}", "image_name": path.name}
                asked = time.perf_counter()
                response = client.post(f"/sessions/{session['session']}/ask", json=body)
                client_ms.append((time.perf_counter() - asked) * 1000)
                events = parse_events(response.text)
                if response.status_code != 200 or events[-1][0] != "done":
                    outcomes.append("failed")
                    continue
                answer = "".join(data["text"] for event, data in events if event == "delta")
                scores = [recorded.loc[(item_id, model), "score"] for model in (EDGE, CLOUD)
                          if recorded.loc[(item_id, model), "response"] == answer]
                if not scores:
                    outcomes.append("unrecognised answer")
                    continue
                rating = int(round(float(np.mean(scores))))
                reveal = client.post(f"/queries/{events[0][1]['query']}/rating", json={"score": rating}).raise_for_status().json()
                consistent = len(scores) == 2 or recorded.loc[(item_id, reveal["model"]), "response"] == answer
                outcomes.append("rated" if consistent else "rated (reveal disagrees with the text)")
    return {"outcomes": outcomes, "client_ms": client_ms}


def parse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        names = [line[6:].strip() for line in lines if line.startswith("event:")]
        data = "".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if names and data:
            events.append((names[0], json.loads(data)))
    return events or [("error", {})]


def free_port_block() -> int:
    """A port whose two successors are free as well (the gateway and two backend-sims)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 2 < 65536 and all(is_free(port + offset) for offset in (1, 2)):
            return port
    raise RuntimeError("no block of three free ports found")


def is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until_serving(server: subprocess.Popen, url: str, log: Path, timeout_s: float = 3600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"study-demo exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/study/api/settings", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"study-demo did not serve within {timeout_s:.0f} s; see {log}")


if __name__ == "__main__":
    main()
