"""Shared pieces of the study tests: a gateway with a study, in front of two simulated backends.

The study's router policies use the fast tests' tiny bundle (thresholds pinned: quality sends every query
to the cloud, speed every query to the edge), so that each policy's route is known in advance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ecvl_router.serve import QueryRouter
from ecvl_router.serve.app import create_app
from ecvl_router.serve.backend_sim import SimulatedModel, create_backend_sim_app
from ecvl_router.serve.gateway import Gateway
from ecvl_router.study.config import StudyGatewayConfig
from ecvl_router.study.routes import study_router
from tests.serve_support import CLOUD, EDGE, ThreadServer

POLICY_ROUTES = {
    ("quality", "ecvl"): "cloud", ("speed", "ecvl"): "edge",
    ("quality", "win-soft-1"): "cloud", ("speed", "win-soft-1"): "edge",
    ("quality", "all-large"): "cloud", ("speed", "all-large"): "cloud",
    ("quality", "all-small"): "edge", ("speed", "all-small"): "edge",
}
"""The route each policy takes with the pinned tiny bundle."""


def study_settings(bundle: Path, database: Path, **overrides: Any) -> dict[str, Any]:
    """A study with the four policies of the paper's online study, at the tiny bundle's MES (6)."""
    return {
        "database": database,
        "scenarios": [{"name": "quality", "title": "Quality first", "mes": 6}, {"name": "speed", "title": "Speed first", "mes": 6}],
        "policies": [
            {"name": "ecvl", "bundles": {"quality": bundle, "speed": bundle}},
            {"name": "all-large", "route": "cloud"},
            {"name": "all-small", "route": "edge"},
            {"name": "win-soft-1", "bundles": {"quality": bundle, "speed": bundle}},
        ],
        **overrides,
    }


@contextmanager
def study_stack(bundle: Path, data: Path, database: Path, *, latency_scale: float = 0.0, **study: Any) -> Iterator[dict[str, Any]]:
    """Two backend-sims (edge, cloud) and a gateway with a study, each on 127.0.0.1 in a thread."""
    sims = {
        "edge": ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(data, EDGE), latency_scale=latency_scale)).start(),
        "cloud": ThreadServer(create_backend_sim_app(SimulatedModel.from_dataset(data, CLOUD), latency_scale=latency_scale)).start(),
    }
    gateway = None
    try:
        config = StudyGatewayConfig(bundle=bundle, edge={"base_url": sims["edge"].url + "/v1"}, cloud={"base_url": sims["cloud"].url + "/v1"},
                               decision_log=database.parent / "decisions.jsonl", study=study_settings(bundle, database, **study))
        core = Gateway(config, QueryRouter.from_bundle(bundle))
        gateway = ThreadServer(create_app(core, routers=[study_router(core, config.study)])).start()
        yield {"url": gateway.url, "sims": sims, "database": database, "log": database.parent / "decisions.jsonl"}
    finally:
        for server in (gateway, *sims.values()):
            if server is not None:
                server.stop()


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a study answer stream."""
    events = []
    for block in response.text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        name = next(line[6:].strip() for line in lines if line.startswith("event:"))
        data = json.loads("".join(line[5:].strip() for line in lines if line.startswith("data:")))
        events.append((name, data))
    return events
