"""A strict JSON parser for --json output: NaN, Infinity and -Infinity are errors, as in RFC 8259."""

from __future__ import annotations

import json
from typing import Any


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str) -> Any:
    """``json.loads`` that refuses the non-standard constants Python's json module writes and accepts."""
    return json.loads(text, parse_constant=_refuse)
