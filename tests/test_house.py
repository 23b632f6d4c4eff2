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
