"""Wall time of a default ``ecvl-router train`` on a real dataset, embeddings included (target: 3,000 items in <= 3 min on 2 cores).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_time.py --data ../shared/data/dynamath-dev
        [--edge Qwen2-VL-7B --cloud GPT-4o] [--mes 1] [--warm]

Runs the command line exactly as a user does (default router and recipe, the three presets) in a fresh
process. By default the embedding cache is an empty temporary folder, so every text and image is encoded
(``--warm``: the default cache, training only). Prints the command's output, its wall time, the process
CPU time of the child and the load average before and after: on a machine shared with other work, compare
figures only with the load stated.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--edge", default="Qwen2-VL-7B")
    parser.add_argument("--cloud", default="GPT-4o")
    parser.add_argument("--mes", type=float, default=1.0)
    parser.add_argument("--warm", action="store_true", help="Use the default embedding cache instead of an empty one.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-c", "from ecvl_router.cli import app; app()", "train", "--data", str(args.data),
                   "--edge", args.edge, "--cloud", args.cloud, "--mes", str(args.mes), "--out", str(Path(scratch) / "run")]
        if not args.warm:
            command += ["--cache-dir", str(Path(scratch) / "cache")]
        load_before = os.getloadavg()
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
        wall = time.perf_counter() - started
        load_after = os.getloadavg()
    print(result.stdout.strip())
    if result.returncode:
        print(result.stderr.strip())
        raise SystemExit(f"train failed with exit code {result.returncode}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"default train on {args.data.name} ({args.edge} / {args.cloud}), {'warm' if args.warm else 'empty'} embedding cache: "
          f"{wall:.0f} s wall, {usage.ru_utime + usage.ru_stime:.0f} s CPU (target {TARGET_S:.0f} s on 2 cores: "
          f"{'met' if wall <= TARGET_S else 'missed'}); load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")


if __name__ == "__main__":
    main()
