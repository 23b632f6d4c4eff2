"""Routers behind one small contract (``Router``) and a registry by name.

``create_router("ecvl", epochs=20)`` builds one; ``load_router(directory)`` reads one that
``Router.save`` wrote, whatever its kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecvl_router.routers.base import Router, read_router_spec
from ecvl_router.routers.baselines import AllLargeRouter, AllSmallRouter, FixedPolicy, RandomRouter
from ecvl_router.routers.ecvl import ECVLRouter
from ecvl_router.routers.ensemble import EnsembleRouter
from ecvl_router.routers.gbdt import GBDTRouter
from ecvl_router.routers.inputs import BRANCHES, check_branches
from ecvl_router.routers.linear import LinearRouter
from ecvl_router.routers.lookup import LookupRouter
from ecvl_router.routers.mf import MFRouter
from ecvl_router.routers.mlp import MLPRouter
from ecvl_router.routers.multi import ECVLMultiRouter, ScoreTargets, competence_from_distributions
from ecvl_router.routers.neural import NeuralRouter
from ecvl_router.routers.profile import ProfileRouter

ROUTER_CLASSES: dict[str, type[Router]] = {
    cls.name: cls for cls in (ECVLRouter, ECVLMultiRouter, MLPRouter, GBDTRouter, LinearRouter, ProfileRouter, LookupRouter, MFRouter, RandomRouter, AllLargeRouter, AllSmallRouter, EnsembleRouter)
}
TRAINABLE_ROUTER_NAMES: tuple[str, ...] = tuple(name for name, cls in ROUTER_CLASSES.items() if cls.trainable)
"""Routers ``train`` can fit: the pair routers of ROUTER_NAMES and the multi-model ``ecvl-multi``."""
ROUTER_NAMES: tuple[str, ...] = tuple(name for name in TRAINABLE_ROUTER_NAMES if not ROUTER_CLASSES[name].learns_scores)
"""Routers that learn from one pair's 0/1 competence labels."""


def router_class(name: str) -> type[Router]:
    """The router class registered as ``name``; raises ValueError listing the known names."""
    try:
        return ROUTER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown router {name!r}; routers are {', '.join(TRAINABLE_ROUTER_NAMES)}") from None


def create_router(name: str, **params: Any) -> Router:
    """A new, unfitted router ``name`` with hyperparameters ``params`` (the rest keep their defaults)."""
    cls = router_class(name)
    accepted = router_hyperparameters(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"router {name!r} has no hyperparameter {unknown[0]!r}; it takes {', '.join(accepted)}")
    return cls(**params)


def router_hyperparameters(cls: type[Router]) -> dict[str, Any]:
    """The hyperparameters a router class takes, with their defaults."""
    return cls().get_params()


def load_router(directory: Path) -> Router:
    """The router ``Router.save`` wrote into ``directory``, of whichever registered kind."""
    name, _ = read_router_spec(directory)
    return router_class(name).load(directory)


__all__ = [
    "BRANCHES",
    "ROUTER_CLASSES",
    "ROUTER_NAMES",
    "TRAINABLE_ROUTER_NAMES",
    "AllLargeRouter",
    "AllSmallRouter",
    "ECVLMultiRouter",
    "ECVLRouter",
    "EnsembleRouter",
    "FixedPolicy",
    "GBDTRouter",
    "LinearRouter",
    "LookupRouter",
    "MFRouter",
    "MLPRouter",
    "NeuralRouter",
    "ProfileRouter",
    "RandomRouter",
    "Router",
    "ScoreTargets",
    "check_branches",
    "competence_from_distributions",
    "create_router",
    "load_router",
    "router_class",
    "router_hyperparameters",
]
