"""What the cross-validation benchmarks share: their command-line options and the embedded dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ecvl_router.data import load_rsd
from ecvl_router.data.rsd import RSD
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.runs import default_cache_dir, rsd_features
from ecvl_router.scenarios import SCENARIOS, Scenario


def cv_parser(description: str, routers: str) -> argparse.ArgumentParser:
    """The options every cross-validation benchmark takes (``--routers`` defaulting to ``routers``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--edge", required=True)
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--mes", type=float, default=None)
    parser.add_argument("--routers", default=routers)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    return parser


def embedded_dataset(args: argparse.Namespace) -> tuple[RSD, QueryFeatures, list[Scenario]]:
    """The dataset of ``--data``, its features through the embedding cache, and the presets at ``--mes``."""
    logging.basicConfig(level=logging.WARNING)
    rsd = load_rsd(args.data)
    extractor = FeatureExtractor.from_settings(ExtractorSettings())
    features = rsd_features(rsd, extractor, cache_dir=default_cache_dir())
    extractor.close()
    scenarios = [s.with_mes(args.mes) if args.mes is not None else s for s in SCENARIOS.values()]
    return rsd, features, scenarios
