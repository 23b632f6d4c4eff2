"""ECVL-Router: scenario-aware edge/cloud routing for vision-language models."""

from typing import Any

from ecvl_router.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "AsyncRouterClient", "RouterClient", "Scenario"]

_LAZY = {"RouterClient": "ecvl_router.client", "AsyncRouterClient": "ecvl_router.client"}


def __getattr__(name: str) -> Any:
    """The clients are imported on first use, so that ``import ecvl_router`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ecvl_router' has no attribute {name!r}")
