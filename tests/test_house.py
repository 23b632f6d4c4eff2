"""House rules the code keeps: long functions split where a name explains a part, no dead helpers."""

from __future__ import annotations

import inspect

import pytest

import ecvl_router.data.summary
import ecvl_router.report.tables
from ecvl_router.metrics import routing_metrics
from ecvl_router.serve.app import create_app

LONGEST = 60


@pytest.mark.parametrize("function", [create_app, routing_metrics], ids=lambda f: f.__qualname__)
def test_functions_stay_short(function) -> None:
    lines = len(inspect.getsourcelines(function)[0])
    assert lines <= LONGEST, f"{function.__qualname__} has {lines} lines"


def test_uncalled_helpers_are_gone() -> None:
    assert not hasattr(ecvl_router.report.tables, "markdown_table")
    assert not hasattr(ecvl_router.data.summary, "solve_rates")


def _imports_of(package: str) -> set[str]:
    """The ecvl_router packages and modules imported anywhere in ``package`` (at module level or in functions)."""
    import ast
    from pathlib import Path

    import ecvl_router

    root = Path(ecvl_router.__file__).parent
    folder = root / package.replace(".", "/")
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ecvl_router."):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("ecvl_router.")}
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("serve", ("ecvl_router.study", "ecvl_router.collect")),
        ("collect", ("ecvl_router.serve", "ecvl_router.study")),
        ("study", ("ecvl_router.collect",)),
        ("openai_http", ("ecvl_router.serve", "ecvl_router.collect", "ecvl_router.study")),
        ("prompts", ("ecvl_router.serve", "ecvl_router.collect", "ecvl_router.study")),
        ("config", ("ecvl_router.serve", "ecvl_router.collect", "ecvl_router.study")),
        ("capture_store", ("ecvl_router.serve", "ecvl_router.collect", "ecvl_router.study")),
        ("sqlite_db", ("ecvl_router.serve", "ecvl_router.collect", "ecvl_router.study", "ecvl_router.capture_store")),
    ],
)
def test_dependencies_run_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    """study -> serve -> shared pieces, and collect -> shared pieces; the gateway knows nothing of the study."""
    wrong = sorted(module for module in _imports_of(package) if module.startswith(forbidden))
    assert wrong == []


def test_the_learning_layer_has_no_import_circles() -> None:
    """Every module of ``learning/`` imports only modules of it that do not import it back, directly or not."""
    from pathlib import Path

    import ecvl_router.learning

    folder = Path(ecvl_router.learning.__file__).parent
    names = sorted(path.stem for path in folder.glob("*.py") if path.stem != "__init__")
    graph = {name: {module.rsplit(".", 1)[1] for module in _imports_of(f"learning.{name}")
                    if module.startswith("ecvl_router.learning.")} for name in names}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(step == target or (step not in seen and reaches(step, target, seen | {step})) for step in graph[start])

    circular = [name for name in names if reaches(name, name, {name})]
    assert len(names) >= 10 and circular == []
