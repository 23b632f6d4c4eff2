"""Every benchmark script imports: what it takes from the package and from its sibling scripts still exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

_IMPORT_ALL = """
import importlib, sys, traceback
sys.path.insert(0, sys.argv[1])
failed = []
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=1).strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_benchmark_script_imports() -> None:
    names = sorted(path.stem for path in BENCHMARKS.glob("*.py"))
    assert "gateway_load" in names and "capture_overhead" in names
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL, str(BENCHMARKS), *names], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"benchmark scripts that do not import:\n{result.stdout}{result.stderr[-2000:]}"
