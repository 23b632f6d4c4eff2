"""The docs name only modules, objects and files that exist, and claim no metric the code does not compute."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
_DOTTED = re.compile(r"`(ecvl_router(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
_FILE = re.compile(r"`((?:ecvl_router/)?[a-z_]+/[a-z0-9_/]*\.(?:py|txt|yaml))`")


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(doc.name, match) for doc in DOCS for match in pattern.findall(doc.read_text(encoding="utf-8"))})


@pytest.mark.parametrize(("doc", "name"), _mentions(_DOTTED))
def test_named_modules_and_objects_exist(doc: str, name: str) -> None:
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return
    pytest.fail(f"{doc} names {name}, which does not exist")


@pytest.mark.parametrize(("doc", "path"), _mentions(_FILE))
def test_named_files_exist(doc: str, path: str) -> None:
    candidates = (ROOT / path, ROOT / "src" / path, ROOT / "src" / "ecvl_router" / path)
    assert any(candidate.is_file() for candidate in candidates), f"{doc} names {path}"


def test_architecture_places_the_sse_reader_in_the_shared_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "`collect/`: a Server-Sent-Events reader" not in text and "`openai_http/sse.py`" in text


def test_no_doc_claims_bartscore_is_computed() -> None:
    from ecvl_router.metrics import routing_metrics

    assert "bart" not in (routing_metrics.__doc__ or "").lower()
    assert "computed by the reproduction report" not in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")


def test_demo_benchmark_quotes_no_learnability_auc_that_no_script_produces() -> None:
    text = (ROOT / "docs" / "demo-benchmark.md").read_text(encoding="utf-8")
    produced = any("roc_auc" in path.read_text(encoding="utf-8") for path in (ROOT / "benchmarks").glob("*.py"))
    assert produced or "AUC" not in text
