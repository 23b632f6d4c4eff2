"""Options shared by several commands: encoder settings and the cache folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ecvl_router.cli.console import fail

if TYPE_CHECKING:  # the encoders import torch: only the commands that use them pay for it
    from ecvl_router.data.rsd import RSD
    from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
    from ecvl_router.scenarios import Scenario

EncodersOption = typer.Option(None, "--encoders", help="YAML file of encoder settings (text_model, image_model, image_size, …).")
CacheOption = typer.Option(None, "--cache-dir", help="Embedding/router cache folder.", show_default="$ECVL_ROUTER_CACHE or ~/.cache/ecvl-router")


def extractor_settings(path: Path | None) -> ExtractorSettings:
    """Encoder settings from a YAML file, or the defaults (MiniLM-L6 + MobileNetV2)."""
    from ecvl_router.config import ConfigError
    from ecvl_router.features.extractor import ExtractorSettings

    if path is None:
        return ExtractorSettings()
    try:
        return ExtractorSettings.from_yaml(path)
    except ConfigError as exc:
        fail(str(exc))


def load_extractor(settings: ExtractorSettings) -> FeatureExtractor:
    """Load the encoders, turning missing or corrupt weights into a clear CLI error."""
    from ecvl_router.features.extractor import FeatureExtractor
    from ecvl_router.features.onnx_encoders import OnnxExportError
    from ecvl_router.features.weights import WeightsIntegrityError, WeightsNotFoundError

    try:
        return FeatureExtractor.from_settings(settings)
    except (WeightsNotFoundError, WeightsIntegrityError, OnnxExportError) as exc:
        fail(str(exc))


def scenarios_on_one_mes(specs: list[str], mes: float | None, rsd: RSD) -> list[Scenario]:
    """The scenarios named by ``--scenario`` options (MES overridden by ``--mes``), checked against the dataset's
    scale and sharing one MES; a clear CLI error otherwise."""
    from ecvl_router.scenarios import ScenarioError, resolve_scenario

    try:
        scenarios = [s for spec in specs for s in resolve_scenario(spec, mes=mes)]
        for s in scenarios:
            s.check_scale(rsd.info.score_min, rsd.info.score_max)
    except ScenarioError as exc:
        fail(str(exc))
    if len({s.mes for s in scenarios}) != 1:
        fail(f"scenarios of one run must share one MES (got {sorted({s.mes for s in scenarios})}); run them separately")
    return scenarios
