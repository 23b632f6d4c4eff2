"""The online study's settings: the ``study`` section of the gateway configuration (YAML, pydantic).

A study compares routing *policies* under a few *scenarios*: a policy is either a router trained for every
scenario (one bundle per scenario, since a bundle is trained at one MES) or a fixed route (all-large sends
every query to the cloud, all-small to the edge). Each participant session gets one policy by a balanced,
seeded assignment; the participant rates every answer on the judge's 1-10 scale or as yes/no.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from ecvl_router.config import STRICT
from ecvl_router.serve.config import GatewayConfig, load_gateway_config

POLICY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.()+-]*$"
"""Policy names: letters, digits and ``_.()+-`` (no ``/``, which joins scenario and policy)."""


class StudyScenario(BaseModel):
    """A scenario participants choose: its name in the router bundles, a title, and the MES ratings meet."""

    model_config = STRICT

    name: str = Field(min_length=1, pattern=r"^[^/]+$", description="the scenario's name in the router bundles")
    title: str = Field(min_length=1, description="what participants see")
    mes: float = Field(ge=1, le=10, description="Minimal Expectation Score on the 1-10 scale: a rating >= MES satisfies")
    description: str = Field("", description="what participants read about the scenario")


DEFAULT_SCENARIOS = (
    StudyScenario(name="quality", title="Quality first", mes=7,
                  description="You want the best possible answer, even if it takes a little longer."),
    StudyScenario(name="speed", title="Speed first", mes=5,
                  description="You want a quick answer; a reasonably good one is enough."),
)
"""The paper's online study (Appendix B.3): Quality-first at MES 7 and Speed-first at MES 5, whose routers are
trained with the RCS1 and RCS3 weights (``ecvl-router train --scenario quality --mes 7``, ``--scenario speed --mes 5``)."""


class StudyPolicy(BaseModel):
    """A routing policy under study: router bundles per scenario, or a fixed route."""

    model_config = STRICT

    name: str = Field(pattern=POLICY_NAME, description="e.g. ecvl, all-large, all-small, win-soft-1")
    route: Literal["edge", "cloud"] | None = Field(None, description="fixed policy: every query to this backend")
    bundles: dict[str, Path] = Field(default_factory=dict, description="scenario name -> router bundle trained for it")

    @model_validator(mode="after")
    def _one_kind(self) -> StudyPolicy:
        if (self.route is None) == (not self.bundles):
            raise ValueError(f"policy {self.name!r}: give either 'route' (edge or cloud) or 'bundles' (scenario: run folder)")
        return self


class StudyConfig(BaseModel):
    """The online study served at ``/study``; relative paths are taken relative to the gateway YAML."""

    model_config = STRICT

    database: Path = Field(Path("study.db"), description="SQLite file; images are stored beside it")
    seed: int = Field(0, ge=0, description="seed of the balanced policy assignment")
    rating: Literal["score", "yes_no"] = Field("score", description="1-10 with the rubric, or 'meets my expectation: yes/no'")
    scenarios: list[StudyScenario] = Field(default_factory=lambda: list(DEFAULT_SCENARIOS), min_length=1)
    policies: list[StudyPolicy] = Field(min_length=1)
    demo_data: Path | None = Field(None, description="dataset folder to take the demo images from; default: rendered ones")
    demo_images: int = Field(6, ge=0, le=24, description="demo images offered on the page (0: uploads only)")

    @field_validator("scenarios", "policies")
    @classmethod
    def _unique_names(cls, entries: list[StudyScenario] | list[StudyPolicy]) -> list:
        names = [entry.name for entry in entries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"names must be unique; repeated: {', '.join(duplicates)}")
        return entries

    @model_validator(mode="after")
    def _bundles_cover_scenarios(self) -> StudyConfig:
        scenarios = {s.name for s in self.scenarios}
        for policy in self.policies:
            if policy.route is not None:
                continue
            missing, unknown = sorted(scenarios - set(policy.bundles)), sorted(set(policy.bundles) - scenarios)
            if missing or unknown:
                problems = ([f"no bundle for scenario(s) {', '.join(missing)}"] if missing else []) + (
                    [f"bundles for unknown scenario(s) {', '.join(unknown)}"] if unknown else []
                )
                raise ValueError(f"policy {policy.name!r}: {'; '.join(problems)} (study scenarios: {', '.join(sorted(scenarios))})")
        return self

    @property
    def policy_names(self) -> list[str]:
        return [policy.name for policy in self.policies]

    def scenario(self, name: str) -> StudyScenario:
        """The study scenario ``name``; KeyError lists the known ones."""
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(f"unknown scenario {name!r}; the study has: {', '.join(s.name for s in self.scenarios)}")

    def relative_to(self, folder: Path) -> StudyConfig:
        """A copy whose relative paths are resolved against ``folder``."""
        policies = [
            policy.model_copy(update={"bundles": {name: folder / path for name, path in policy.bundles.items()}})
            for policy in self.policies
        ]
        update = {"database": folder / self.database, "policies": policies}
        if self.demo_data is not None:
            update["demo_data"] = folder / self.demo_data
        return self.model_copy(update=update)


class StudyGatewayConfig(GatewayConfig):
    """The gateway configuration with its ``study`` section read as a :class:`StudyConfig`."""

    study: StudyConfig | None = Field(None, description="an online study served at /study (docs/study.md)")  # type: ignore[assignment]

    def relative_paths(self, folder: Path) -> dict[str, Any]:
        update = super().relative_paths(folder)
        if self.study is not None:
            update["study"] = self.study.relative_to(folder)
        return update


def load_study_gateway_config(path: Path) -> StudyGatewayConfig:
    """A gateway configuration file with its study section checked; ConfigError names the file and each bad field."""
    return load_gateway_config(path, StudyGatewayConfig)
