"""What the deployment tests read: the Dockerfile, commands as the CLI parses them, the gateway's routes and metrics."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args
from urllib.parse import urlsplit

import typer
from typer.core import TyperGroup

from ecvl_router.cli import app
from ecvl_router.serve.app import create_app
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from ecvl_router.serve.config import Limits
from ecvl_router.serve.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "ecvl-router"
_OPERATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class Invocation:
    """An ``ecvl-router`` command line as the CLI parses it: the subcommand's path and its parameters."""

    command: tuple[str, ...]
    params: dict[str, Any]


class CommandLineError(ValueError):
    """A command line the CLI refuses: an unknown command or option, a bad or missing value."""


def parse_cli(argv: list[str]) -> Invocation:
    """``ecvl-router ARGV`` parsed by the real CLI; CommandLineError where the CLI would refuse it."""
    command = typer.main.get_command(app)
    context = command.make_context("ecvl-router", [], resilient_parsing=True)
    path: list[str] = []
    args = list(argv)
    while isinstance(command, TyperGroup):
        while args and args[0].startswith("-"):  # the root's own options (-v) come before the subcommand
            args.pop(0)
        if not args:
            raise CommandLineError(f"ecvl-router {shlex.join(argv)}: no subcommand")
        name = args.pop(0)
        found = command.get_command(context, name)
        if found is None:
            raise CommandLineError(f"ecvl-router {shlex.join(argv)}: no command {' '.join([*path, name])!r}")
        command, path = found, [*path, name]
        context = command.make_context(name, [], parent=context, resilient_parsing=True)
    try:
        parsed = command.make_context(path[-1], args, parent=context.parent)
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # the CLI's usage errors (click's, as typer ships them) have one
            raise
        raise CommandLineError(f"ecvl-router {shlex.join(argv)}: {exc.format_message()}") from None
    return Invocation(tuple(path), parsed.params)


def shell_invocations(script: str) -> list[Invocation]:
    """Every ``ecvl-router`` command in a shell script (lines, ``&&``, ``||``, ``;``), parsed by the CLI."""
    found = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in _OPERATORS:
                if command[:1] == ["ecvl-router"]:
                    found.append(parse_cli(command[1:]))
                command = []
            else:
                command.append(token)
    return found


def dockerfile(all_stages: bool = False) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (of its last stage unless ``all_stages``) as (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip().split(None, 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    instructions = [(name.upper(), rest) for name, rest in lines]
    start = 0 if all_stages else max(index for index, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[start:]


def image_setting(name: str) -> str:
    """The arguments of the last stage's only ``name`` instruction."""
    values = [rest for instruction, rest in dockerfile() if instruction == name]
    assert len(values) == 1, f"the image's last stage has {len(values)} {name} instructions"
    return values[0]


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the image (exec form)."""
    return json.loads(image_setting("ENTRYPOINT")) + json.loads(image_setting("CMD"))


def image_environment() -> dict[str, str]:
    """The last stage's ENV settings."""
    found = {}
    for instruction, rest in dockerfile():
        if instruction == "ENV":
            found |= dict(token.split("=", 1) for token in shlex.split(rest))
    return found


def image_port() -> int:
    return int(image_setting("EXPOSE").split("/")[0])


def http_target(text: str) -> tuple[str, int, str]:
    """Host, port and path of the one http:// URL in ``text``."""
    urls = re.findall(r"http://[^\s'\"]+", text)
    assert len(urls) == 1, f"expected one URL in {text!r}"
    url = urlsplit(urls[0])
    assert url.hostname is not None and url.port is not None, urls[0]
    return url.hostname, url.port, url.path


def gateway_routes() -> set[str]:
    """The paths the gateway app serves (its routes do not touch the gateway until a request comes)."""
    stand_in = SimpleNamespace(config=SimpleNamespace(limits=Limits()))
    return {route.path for route in create_app(stand_in).routes}  # type: ignore[arg-type]


def backend_sim_routes() -> set[str]:
    return {route.path for route in create_backend_sim_app(SimulatedModel("sim", {}, 1.0, 0.5)).routes}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ExportedMetric:
    name: str
    samples: frozenset[str]
    labels: frozenset[str]


def exported_metrics() -> dict[str, ExportedMetric]:
    """The gateway's metrics as a scrape shows them, by sample name (``ecvl_router_requests_total``, ``..._bucket``, …),
    with their labels: those of a gateway with a capture section, serving a bundle with a drift reference."""
    import asyncio
    import tempfile

    from ecvl_router.features.memory_cache import CacheCounts
    from ecvl_router.learning.drift import P_BINS
    from ecvl_router.serve.capture import Capture
    from ecvl_router.serve.config import CapturePolicy
    from ecvl_router.serve.drift import DriftReference
    from ecvl_router.serve.routing import RouterStats

    from prometheus_client.parser import text_string_to_metric_families

    metrics = GatewayMetrics()
    metrics.follow(lambda: RouterStats(batch_sizes={1: 1}, cache={"text": CacheCounts(1, 1)}, cache_bytes=1))
    reference = {"p_reference": {"s": {"bins": P_BINS.tolist(), "counts": [1] * (len(P_BINS) - 1)}}}
    metrics.watch_drift(1).serve(DriftReference.from_manifest("b", ["s"], reference))
    with tempfile.TemporaryDirectory() as folder:
        capture = Capture.open(CapturePolicy(dir=Path(folder)), {}, {}, (0.0, 1.0), metrics.registry)
        asyncio.run(capture.aclose())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    found: dict[str, ExportedMetric] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        owner = next((m for m in vars(metrics).values() if getattr(m, "_name", None) == family.name), None)
        labels = set(getattr(owner, "_labelnames", ())) | {k for s in family.samples for k in s.labels if k != "le"}
        metric = ExportedMetric(family.name, frozenset(family.name + suffix for suffix in suffixes[family.type]), frozenset(labels))
        found |= {sample: metric for sample in metric.samples}
    return found


def env_fields(model: type, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the configuration's fields that name an environment variable (``*_env``), recursively."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        if name.endswith("_env"):
            yield prefix + name
            continue
        for annotation in (field.annotation, *get_args(field.annotation)):  # a section, or an optional one
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from env_fields(annotation, f"{prefix}{name}.")


def named_variables(config: Any) -> set[str]:
    """The environment variables a validated gateway configuration names."""
    from ecvl_router.serve.config import GatewayConfig

    found = set()
    for dotted in env_fields(GatewayConfig):
        value: Any = config
        for part in dotted.split("."):
            value = getattr(value, part, None)
        if value:
            found.add(value)
    return found
