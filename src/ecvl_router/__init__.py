"""ECVL-Router: scenario-aware edge/cloud routing for vision-language models."""

from ecvl_router.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Scenario"]
