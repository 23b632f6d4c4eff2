"""How much a comparison that ignores groups overstates routing: ``evaluate-routers`` folds with and without groups.

    .venv/bin/python benchmarks/grouped_cv.py --data DIR --edge E --cloud C [--mes M]
        [--routers linear,linear:oof] [--folds 5] [--repeats 1] [--jobs 2]

The dataset's items must name groups (``items.group``). Runs ``compare_routers`` twice on the same queries
and features: once with grouped folds (each group in one test fold, as ``evaluate-routers`` does), once with
the groups dropped (plain stratified folds, so variants of one question sit on both sides of a fold), and
prints each policy's mean RCS and paired gain over the better trivial policy under both, with the
difference.
"""

from __future__ import annotations

import dataclasses
import time

from cv_setup import cv_parser, embedded_dataset
from ecvl_router.experiments.router_comparison import compare_routers
from ecvl_router.learning.router_cv import CVSettings, PolicySpec


def main() -> None:
    parser = cv_parser(__doc__, "linear,linear:oof")
    parser.set_defaults(repeats=1)
    args = parser.parse_args()
    rsd, features, scenarios = embedded_dataset(args)
    if not rsd.has_groups:
        parser.error(f"{args.data}: no item names a group")
    policies = [PolicySpec.parse(text) for text in args.routers.split(",")]
    ungrouped = dataclasses.replace(rsd, items=rsd.items.assign(group=None))
    summaries = {}
    for name, data in (("grouped", rsd), ("ungrouped", ungrouped)):
        started = time.perf_counter()
        comparison = compare_routers(data, features, edge=args.edge, cloud=args.cloud, scenarios=scenarios, policies=policies,
                                     n_folds=args.folds, n_repeats=args.repeats, settings=CVSettings(), jobs=args.jobs)
        summaries[name] = comparison.summary.set_index(["scenario", "policy"])
        print(f"{name}: {comparison.n_queries} queries, {comparison.n_groups} groups kept whole, "
              f"{time.perf_counter() - started:.0f} s")
    print(f"{rsd.info.name}: {args.edge} (edge) / {args.cloud} (cloud); {args.folds} folds x {args.repeats} repeats")
    print(f"{'scenario':<11} {'policy':<12} {'RCS grouped':>12} {'ungrouped':>10} {'gain grouped [95 % CI]':>28} "
          f"{'gain ungrouped [95 % CI]':>28} {'overstated by':>14}")
    grouped, plain = summaries["grouped"], summaries["ungrouped"]
    for scenario, policy in grouped.index:
        if policy in ("all-large", "all-small", "oracle", "bayes"):
            continue
        a, b = grouped.loc[(scenario, policy)], plain.loc[(scenario, policy)]
        print(f"{scenario:<11} {policy:<12} {a['rcs']:>12.4f} {b['rcs']:>10.4f} "
              f"{a['gain']:>+9.4f} [{a['gain_low']:+.4f}, {a['gain_high']:+.4f}] "
              f"{b['gain']:>+9.4f} [{b['gain_low']:+.4f}, {b['gain_high']:+.4f}] {b['gain'] - a['gain']:>+14.4f}")


if __name__ == "__main__":
    main()
