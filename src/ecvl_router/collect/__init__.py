"""Build a Response Score Dataset from real VLMs: collect answers from OpenAI-compatible backends, judge them
with an LLM, and check the judge against human raters.

``collect_responses`` and ``judge_responses`` are coroutines (run them with ``asyncio.run``); the agreement
statistics live in ``ecvl_router.collect.agreement`` (they need scipy and matplotlib).
"""

from ecvl_router.collect.benchmarks import BenchmarkError, BenchmarkItem, ColumnMap, HubSpec, hub_presets, load_benchmark, load_hub_items
from ecvl_router.collect.client import ChatClient, Completion
from ecvl_router.collect.collector import collect_responses, write_collect_manifest
from ecvl_router.collect.config import BackendConfig, JudgeConfig, load_judge_config, load_models_config, resolve_api_key
from ecvl_router.collect.judge import DatasetReport, SelfJudgingError, judge_responses, write_judged_dataset
from ecvl_router.collect.pool import Tally
from ecvl_router.collect.scoring import ParsedScore, parse_score
from ecvl_router.collect.shard import Shard
from ecvl_router.collect.store import StoreLockedError
from ecvl_router.collect.workspace import CollectionDir
from ecvl_router.config import ConfigError
from ecvl_router.openai_http.errors import CallError
from ecvl_router.openai_http.retry import RetryPolicy

__all__ = [
    "BackendConfig",
    "BenchmarkError",
    "BenchmarkItem",
    "CallError",
    "ChatClient",
    "CollectionDir",
    "ColumnMap",
    "Completion",
    "ConfigError",
    "DatasetReport",
    "HubSpec",
    "JudgeConfig",
    "ParsedScore",
    "RetryPolicy",
    "SelfJudgingError",
    "Shard",
    "StoreLockedError",
    "Tally",
    "collect_responses",
    "hub_presets",
    "judge_responses",
    "load_benchmark",
    "load_hub_items",
    "load_judge_config",
    "load_models_config",
    "parse_score",
    "resolve_api_key",
    "write_collect_manifest",
    "write_judged_dataset",
]
