"""Feature stage: text and image encoders, query statistics and the embedding cache.

Light names (feature container, statistics, cache, errors) import eagerly; the encoder classes
pull in torch, so they are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ecvl_router.features.cache import EmbeddingCache
from ecvl_router.features.features import QueryFeatures
from ecvl_router.features.statistics import STAT_NAMES, STATISTICS_VERSION, query_statistics
from ecvl_router.features.weights import WeightsIntegrityError, WeightsNotFoundError

if TYPE_CHECKING:
    from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor, extract_for_items
    from ecvl_router.features.image import MobileNetV2Encoder, TransformersImageEncoder
    from ecvl_router.features.text import TextEncoder

_LAZY = {
    "ExtractorSettings": "ecvl_router.features.extractor",
    "FeatureExtractor": "ecvl_router.features.extractor",
    "extract_for_items": "ecvl_router.features.extractor",
    "MobileNetV2Encoder": "ecvl_router.features.image",
    "TransformersImageEncoder": "ecvl_router.features.image",
    "TextEncoder": "ecvl_router.features.text",
}

__all__ = [
    "STAT_NAMES",
    "STATISTICS_VERSION",
    "EmbeddingCache",
    "ExtractorSettings",
    "FeatureExtractor",
    "MobileNetV2Encoder",
    "QueryFeatures",
    "TextEncoder",
    "TransformersImageEncoder",
    "WeightsIntegrityError",
    "WeightsNotFoundError",
    "extract_for_items",
    "query_statistics",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
