"""`make image-test`: start the gateway image and send it one request through the official `openai` client.

In containers of the image, on a network of their own: the demo benchmark is generated and a router bundle
trained with no network at all (the encoders' weights are in the image), two `backend-sim` containers serve
the demo's simulated models, and the gateway serves the bundle with the image's own command, configuration
layout and port, its port published on 127.0.0.1. The script checks that the gateway runs as a non-root user,
that the image's HEALTHCHECK command passes, and that one chat request with an image is answered, then
removes everything it made. Where the container tool cannot run a container on this machine it says why and
exits 0 (skipped).

    python deploy/image_test.py --image ecvl-router:0.1.0 --tool docker
    python deploy/image_test.py --image ecvl-router:0.1.0 --tool "podman --runtime runc" --run-flags "--ulimit nofile=20000:20000"
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from openai import APIError, OpenAI

ROOT = Path(__file__).resolve().parents[1]
EDGE, CLOUD = "sim-vlm-1b", "sim-vlm-38b"
STATE = "/var/lib/ecvl-router"
DEMO = f"{STATE}/data/demo"
TRAIN = (f"ecvl-router data demo --out {DEMO} --items 200 && "
         f"ecvl-router train --data {DEMO} --edge {EDGE} --cloud {CLOUD} --out {STATE}/data/run && "
         f"cp -r {STATE}/data/run/. {STATE}/bundle/")


class Containers:
    """Runs the container tool; remembers what it created so that ``close`` removes it."""

    def __init__(self, tool: list[str], run_flags: list[str]) -> None:
        self.tool, self.run_flags = tool, run_flags
        self.suffix = uuid.uuid4().hex[:8]
        self.created: list[list[str]] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.tool, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"`{shlex.join([*self.tool, *args])}` failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("run", *self.run_flags, *args, check=check)

    def create(self, kind: str, name: str) -> str:
        """A network or volume named ``name`` plus this run's suffix, removed by ``close``."""
        full = f"{name}-{self.suffix}"
        self(kind, "create", full)
        self.created.append([kind, "rm", "-f", full])
        return full

    def start(self, name: str, image: str, *args: str, network: str, options: tuple[str, ...] = ()) -> str:
        full = f"{name}-{self.suffix}"
        self.run("-d", "--name", full, "--network", network, "--network-alias", name, *options, image, *args)
        self.created.append(["rm", "-f", "-v", full])  # -v: with its anonymous volumes (the bundle VOLUME)
        return full

    def logs(self, name: str) -> str:
        """The end of container ``name``'s log."""
        result = self("logs", name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def close(self) -> None:
        for command in reversed(self.created):
            self(*command, check=False, timeout=120)


def cannot_run(containers: Containers, image: str) -> str | None:
    """Why no container of ``image`` can run here (None: one can)."""
    if not containers.tool or Path(containers.tool[0]).name == "buildah":
        return f"{containers.tool[0] if containers.tool else 'no container tool'} builds images but does not run containers"
    if containers("image", "inspect", image, check=False).returncode != 0:
        return f"there is no image {image}: run `make image` first"
    probe = containers.run("--rm", "--network", "none", "--entrypoint", "true", image, check=False)
    if probe.returncode != 0:
        return f"`{shlex.join(containers.tool)} run` fails here: {probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, containers: Containers, name: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s; the gateway's log:\n{containers.logs(name)}")


def healthcheck(containers: Containers, image: str) -> list[str]:
    """The image's HEALTHCHECK command (its CMD form)."""
    config = json.loads(containers("image", "inspect", image).stdout)[0]
    check = (config.get("Config") or {}).get("Healthcheck") or config.get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] != "CMD":
        raise RuntimeError(f"{image} has no HEALTHCHECK in exec form: {test}")
    return test[1:]


def one_request(port: int, demo: Path) -> str:
    """One chat request with a demo item's question and image, through the openai client; a summary line."""
    item = next(row for row in map(json.loads, (demo / "items.jsonl").read_text(encoding="utf-8").splitlines()) if row.get("image"))
    image = demo / item["image"]
    uri = f"data:image/{'png' if image.suffix == '.png' else 'jpeg'};base64,{base64.b64encode(image.read_bytes()).decode()}"
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
    completion = client.chat.completions.create(
        model="ecvl-router",
        messages=[{"role": "user", "content": [{"type": "text", "text": item["question"]}, {"type": "image_url", "image_url": {"url": uri}}]}],
    )
    ecvl = (completion.model_extra or {}).get("ecvl") or {}
    answer = completion.choices[0].message.content or ""
    if ecvl.get("route") not in ("edge", "cloud") or completion.model not in (EDGE, CLOUD) or not answer:
        raise RuntimeError(f"unexpected answer: model {completion.model!r}, ecvl {ecvl}, content {answer[:80]!r}")
    return f"answered by {ecvl['route']} ({completion.model}), p = {ecvl['p']:.3f}, τ = {ecvl['tau']:.3f}: {answer[:60]!r}"


def exercise(containers: Containers, image: str, work: Path) -> None:
    for folder in ("bundle", "data"):
        (work / folder).mkdir(mode=0o777)
        (work / folder).chmod(0o777)  # the image's user writes here, whatever the umask
    mounts = ("-v", f"{work / 'bundle'}:{STATE}/bundle", "-v", f"{work / 'data'}:{STATE}/data")
    print("generating the demo benchmark and training a bundle in the image, with no network …", flush=True)
    containers.run("--rm", "--network", "none", *mounts, "--entrypoint", "sh", image, "-ec", TRAIN)
    network = containers.create("network", "ecvl-image-test")
    data_ro = ("-v", f"{work / 'data'}:{STATE}/data:ro")
    for name, model, port in (("edge", EDGE, "8101"), ("cloud", CLOUD, "8102")):
        containers.start(name, image, "backend-sim", "--data", DEMO, "--model", model, "--host", "0.0.0.0", "--port", port,
                         network=network, options=data_ro)
    port, log = free_port(), containers.create("volume", "ecvl-image-test-log")  # a new volume takes the image's owner
    gateway = containers.start("gateway", image, network=network, options=(
        "-p", f"127.0.0.1:{port}:8000", "--read-only", "--tmpfs", "/tmp", "-v", f"{log}:{STATE}/log",
        "-v", f"{ROOT / 'deploy' / 'gateway.yaml'}:/etc/ecvl-router/gateway.yaml:ro", "-v", f"{work / 'bundle'}:{STATE}/bundle:ro"))
    print(f"waiting for the gateway's /readyz on 127.0.0.1:{port} …", flush=True)
    wait_ready(f"http://127.0.0.1:{port}/readyz", containers, gateway)
    user = containers("exec", gateway, "id", "-u").stdout.strip()
    if user == "0":
        raise RuntimeError("the gateway runs as root")
    containers("exec", gateway, *healthcheck(containers, image))
    print(f"gateway user id {user}; the image's HEALTHCHECK passes", flush=True)
    try:
        print(one_request(port, work / "data" / "demo"), flush=True)
    except APIError as exc:
        raise RuntimeError(f"the request failed: {exc}; the gateway's log:\n{containers.logs(gateway)}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="image to test, e.g. ecvl-router:0.1.0")
    parser.add_argument("--tool", default="docker", help="container tool command, e.g. docker, podman, 'podman --runtime runc'")
    parser.add_argument("--run-flags", default="", help="extra options for every `run`, e.g. '--ulimit nofile=20000:20000'")
    args = parser.parse_args()
    containers = Containers(shlex.split(args.tool), shlex.split(args.run_flags))
    reason = cannot_run(containers, args.image)
    if reason is not None:
        print(f"image-test skipped: cannot run a container here: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="ecvl-image-test-") as tmp:
        try:
            exercise(containers, args.image, Path(tmp))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"image-test failed: {exc}", file=sys.stderr)
            return 1
        finally:
            containers.close()
    print("image-test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
