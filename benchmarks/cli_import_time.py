"""Import time of `ecvl-router --help`, `data validate --help` and an argument error, with `python -X importtime`.

Usage: python benchmarks/cli_import_time.py [--repeat N]. Prints, per command, the best of N runs of the
total import time (the sum of the top-level imports' cumulative times) and the heaviest top-level imports.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

COMMANDS = {
    "--help": ["--help"],
    "data validate --help": ["data", "validate", "--help"],
    "argument error": ["data", "validate"],
}
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")


def imports(args: list[str]) -> list[tuple[str, int, float]]:
    """(module, nesting depth, cumulative seconds) of every import made while running ``ecvl-router ARGS``."""
    code = "import sys; from ecvl_router.cli import main; sys.argv = ['ecvl-router', *sys.argv[1:]]; main()"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True, env=env)
    return [(match[4], len(match[3]), int(match[2]) / 1e6) for line in result.stderr.splitlines() if (match := _LINE.match(line))]


def import_times(args: list[str]) -> dict[str, float]:
    """Cumulative import seconds of each top-level module imported while running ``ecvl-router ARGS``."""
    times: dict[str, float] = {}
    for module, depth, seconds in imports(args):
        if depth == 1:  # nested imports are indented further
            times[module] = times.get(module, 0.0) + seconds
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    for name, args in COMMANDS.items():
        runs = [import_times(args) for _ in range(repeat)]
        best = min(runs, key=lambda times: sum(times.values()))
        heaviest = sorted(best.items(), key=lambda item: -item[1])[:3]
        print(f"{name:22s} {sum(best.values()):6.3f} s   " + ", ".join(f"{module} {seconds:.3f}" for module, seconds in heaviest))


if __name__ == "__main__":
    main()
