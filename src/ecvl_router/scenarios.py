"""Routing scenarios: a Minimal Expectation Score (MES) and the weights of the Routing Comprehensive Score.

RCS = alpha * APSP + beta * CA - gamma * AIL (paper, Eq. 7). The presets are the paper's RCS1/2/3 (section 3.2).
A guaranteed scenario (``max_quality_drop`` set) instead promises a bounded quality drop with a given
confidence; its threshold comes from ``ecvl_router.learning.risk_control`` (docs/guarantees.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_MES = 6.0
DEFAULT_CONFIDENCE = 0.9
"""Confidence of a guaranteed scenario that sets ``max_quality_drop`` alone."""
GUARANTEED_WEIGHTS = {"alpha": 0.0, "beta": 1.0, "gamma": 0.0}
"""RCS weights a guaranteed scenario gets unless it sets its own: RCS = CA, the edge share it maximises."""


class ScenarioError(ValueError):
    """A scenario is unknown, malformed, or does not fit a dataset's score scale."""


class Scenario(BaseModel):
    """A user scenario: the MES (on the dataset's score scale) and the RCS weights (alpha, beta, gamma).

    ``cloud_allowed=False`` marks a privacy scenario: requests must never leave the edge.
    ``max_quality_drop`` (with ``confidence``) makes it a guaranteed scenario: with probability at
    least ``confidence`` over the calibration data, APSP(all-at-large) - APSP(routed) at this MES is at
    most ``max_quality_drop`` (docs/guarantees.md). Its weights default to ``GUARANTEED_WEIGHTS``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    mes: float = DEFAULT_MES
    alpha: float = Field(ge=0)
    beta: float = Field(ge=0)
    gamma: float = Field(ge=0)
    cloud_allowed: bool = True
    description: str = ""
    max_quality_drop: float | None = Field(default=None, gt=0, lt=1)
    confidence: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _guarantee_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("max_quality_drop") is None:
            return data
        defaults = {**GUARANTEED_WEIGHTS, "confidence": DEFAULT_CONFIDENCE}
        return {**data, **{key: value for key, value in defaults.items() if data.get(key) is None}}

    @field_validator("mes", "alpha", "beta", "gamma")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _consistent_guarantee(self) -> Scenario:
        if self.confidence is not None and self.max_quality_drop is None:
            raise ValueError("confidence needs max_quality_drop")
        if self.guaranteed and not self.cloud_allowed:
            raise ValueError("a quality guarantee needs the cloud (cloud_allowed: false cannot promise a bounded drop)")
        return self

    @property
    def guaranteed(self) -> bool:
        """Whether this scenario promises a bounded quality drop (its tau comes from risk control)."""
        return self.max_quality_drop is not None

    def promise(self) -> str | None:
        """The guarantee in one line, or None for a scenario without one."""
        if self.max_quality_drop is None or self.confidence is None:
            return None
        return (
            f"quality drop (APSP at MES {self.mes:g} against all-at-large) at most {self.max_quality_drop:g} "
            f"with confidence {self.confidence:g}, on traffic exchangeable with the calibration data"
        )

    def rcs(self, apsp: float, ca: float, ail: float) -> float:
        """The Routing Comprehensive Score of this scenario for given APSP, CA and AIL (seconds)."""
        return self.alpha * apsp + self.beta * ca - self.gamma * ail

    def with_mes(self, mes: float) -> Scenario:
        """The same weights with another MES."""
        return self.model_copy(update={"mes": float(mes)})

    def check_scale(self, score_min: float, score_max: float) -> None:
        """Raise ScenarioError unless the MES lies on the dataset's score scale [score_min, score_max]."""
        if not score_min <= self.mes <= score_max:
            raise ScenarioError(
                f"scenario {self.name!r}: mes={self.mes:g} is outside the dataset's score scale "
                f"[{score_min:g}, {score_max:g}]"
            )


SCENARIOS: dict[str, Scenario] = {
    "quality": Scenario(
        name="quality", alpha=1.2, beta=0.1, gamma=0.001, description="RCS1: high-quality output first"
    ),
    "efficiency": Scenario(
        name="efficiency", alpha=1.0, beta=0.12, gamma=0.001, description="RCS2: low energy / cost first"
    ),
    "speed": Scenario(name="speed", alpha=1.0, beta=0.1, gamma=0.0015, description="RCS3: fast response first"),
}
"""The paper's presets by name (RCS1 = quality, RCS2 = efficiency, RCS3 = speed), all at MES 6."""

PRESET_ALIASES = {"rcs1": "quality", "rcs2": "efficiency", "rcs3": "speed"}


def load_scenarios(path: Path) -> list[Scenario]:
    """Scenarios from a YAML file: one mapping, a list of mappings, or ``{scenarios: [...]}``.

    Errors name the file, the entry and the field.
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenarios: {exc}") from exc
    if isinstance(document, dict) and "scenarios" in document:
        document = document["scenarios"]
    entries: list[Any] = document if isinstance(document, list) else [document]
    scenarios = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ScenarioError(f"{path}: scenario #{index + 1} is not a mapping")
        try:
            scenarios.append(Scenario(**entry))
        except ValidationError as exc:
            raise ScenarioError(f"{path}: scenario #{index + 1}: {_describe(exc)}") from exc
    if not scenarios:
        raise ScenarioError(f"{path}: no scenarios defined")
    return scenarios


def resolve_scenario(spec: str, *, mes: float | None = None) -> list[Scenario]:
    """Scenarios named by a CLI argument: a preset name (or rcs1/2/3) or a YAML file; ``mes`` overrides MES."""
    key = PRESET_ALIASES.get(spec.lower(), spec.lower())
    if key in SCENARIOS:
        found = [SCENARIOS[key]]
    elif Path(spec).is_file():
        found = load_scenarios(Path(spec))
    else:
        known = ", ".join(SCENARIOS)
        raise ScenarioError(f"unknown scenario {spec!r}: use one of {known}, rcs1/rcs2/rcs3, or a YAML file")
    return [s.with_mes(mes) for s in found] if mes is not None else found


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"field {'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors())
