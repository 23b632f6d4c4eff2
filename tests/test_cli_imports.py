"""`ecvl-router --help` and argument errors import no heavy module and take well under a second of imports."""

from __future__ import annotations

import pytest

from benchmarks.cli_import_time import COMMANDS, import_times, imports

HEAVY = ("torch", "pandas", "sklearn", "scipy", "transformers", "fastapi", "httpx", "matplotlib",
         "ecvl_router.features", "ecvl_router.routers", "ecvl_router.experiments", "ecvl_router.collect")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_and_argument_errors_import_nothing_heavy(name: str) -> None:
    imported = {module for module, _, _ in imports(COMMANDS[name])}
    assert "ecvl_router.cli" in imported
    heavy = sorted(module for module in imported if module.split(".")[0] in HEAVY or module.startswith(HEAVY))
    assert heavy == []


def test_help_takes_under_a_second_of_imports() -> None:
    best = min(sum(import_times(["--help"]).values()) for _ in range(3))
    assert best < 1.0, f"{best:.2f} s of imports"
