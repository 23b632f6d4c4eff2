"""Wall time of the cross-validated router comparison (``ecvl-router evaluate-routers``) with cached embeddings.

    .venv/bin/python benchmarks/evaluate_routers_cost.py --data DIR --edge E --cloud C [--mes M]
        [--routers ecvl,ecvl-multi:oof,...] [--folds 5] [--repeats 3] [--jobs 2]

Embeds the dataset first (through the cache, not timed), then times ``compare_routers`` with the default
routers (or ``--routers``) and prints the wall time and the seconds per fold.
"""

from __future__ import annotations

import time

from cv_setup import cv_parser, embedded_dataset
from ecvl_router.experiments.router_comparison import DEFAULT_POLICIES, compare_routers
from ecvl_router.learning.router_cv import CVSettings, PolicySpec


def main() -> None:
    args = cv_parser(__doc__, ",".join(DEFAULT_POLICIES)).parse_args()
    rsd, features, scenarios = embedded_dataset(args)
    policies = [PolicySpec.parse(text) for text in args.routers.split(",")]
    started, cpu_started = time.perf_counter(), time.process_time()
    comparison = compare_routers(rsd, features, edge=args.edge, cloud=args.cloud, scenarios=scenarios, policies=policies,
                                 n_folds=args.folds, n_repeats=args.repeats, settings=CVSettings(), jobs=args.jobs)
    wall = time.perf_counter() - started
    folds = args.folds * args.repeats
    print(f"{rsd.info.name}: {comparison.n_queries} queries, {len(rsd.models)} models; {args.edge} / {args.cloud}")
    print(f"routers {args.routers}; {args.folds} folds x {args.repeats} repeats; {args.jobs} worker process(es)")
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min), {wall / folds:.0f} s per fold; "
          f"CPU time of this process {time.process_time() - cpu_started:.0f} s (worker processes not included)")


if __name__ == "__main__":
    main()
