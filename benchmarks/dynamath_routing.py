"""Does the default router pay off on DynaMath? Grouped repeated k-fold on two pairs, checked against the goals.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dynamath_routing.py --data ../shared/data/dynamath-dev
        [--pair Qwen2-VL-7B/GPT-4o --pair InternVL2-8B/InternVL2-76B] [--mes 1] [--folds 5] [--repeats 3]
        [--routers lookup] [--jobs 2] [--out DIR]

Per pair, ``compare_routers`` scores the default router of ``ecvl-router train`` (``DEFAULT_ROUTER`` with
``DEFAULT_RECIPE``) next to the ``lookup`` baseline (and any other ``--routers``), random routing, the two
trivial policies and the oracle, on grouped folds (each group in one test fold). It prints every policy's
curve share and edge shares at 95 % and 90 % of all-at-cloud quality with 95 % CIs, the paired RCS gain over
the better trivial policy per preset, and whether each goal holds:

- the default router's curve-share CI lies above zero;
- its edge share at 95 % quality is at least 1.25 × random routing's;
- at no preset is its mean RCS below the better trivial policy's by more than 0.005;
- its curve share beats every baseline of ``--routers`` (mean, with the paired difference's CI).

With ``--out``, each pair's full ``evaluate-routers`` report (tables, curves, figures) goes to DIR/<edge>__<cloud>.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cv_setup import embedded_dataset
from ecvl_router.experiments.router_comparison import Comparison, compare_routers
from ecvl_router.learning.crossval import corrected_interval
from ecvl_router.learning.curve_summary import RANDOM
from ecvl_router.learning.recipes import DEFAULT_RECIPE, DEFAULT_ROUTER
from ecvl_router.learning.router_cv import CVSettings, PolicySpec
from ecvl_router.report.crossval_report import write_crossval_report

PAIRS = ("Qwen2-VL-7B/GPT-4o", "InternVL2-8B/InternVL2-76B")
MAX_LOSS = 0.005
EDGE_95_RATIO = 1.25


def _cell(row, key: str) -> str:
    return f"{row[key]:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"


def report_pair(comparison: Comparison, default: str, baselines: list[str], test_share: float) -> list[tuple[str, bool]]:
    """Print one pair's figures; return each goal with whether it holds."""
    shares = comparison.curves.shares
    score = shares[(shares["measure"] == "score") & (shares["scenario"] == shares["scenario"].iloc[0])].set_index("policy")
    random = score.loc[RANDOM]
    print(f"  {'policy':<16} {'curve share [95 % CI]':>24} {'edge share at 95 %':>26} {'x random':>9} "
          f"{'edge share at 90 %':>26} {'x random':>9}")
    for policy in [default, *baselines, RANDOM, "oracle"]:
        row = score.loc[policy]
        ratio95 = row["edge_95"] / random["edge_95"] if random["edge_95"] > 0 else float("nan")
        ratio90 = row["edge_90"] / random["edge_90"] if random["edge_90"] > 0 else float("nan")
        print(f"  {policy:<16} {_cell(row, 'curve_share'):>24} {_cell(row, 'edge_95'):>26} {ratio95:>9.2f} "
              f"{_cell(row, 'edge_90'):>26} {ratio90:>9.2f}")
    summary = comparison.summary.set_index(["scenario", "policy"])
    print(f"  {'preset':<11} {'policy':<16} {'RCS':>8} {'gain over the better trivial [95 % CI]':>40} {'fallback':>9}")
    worst_gain = np.inf
    for scenario in comparison.summary["scenario"].unique():
        for policy in [default, *baselines]:
            row = summary.loc[(scenario, policy)]
            print(f"  {scenario:<11} {policy:<16} {row['rcs']:>8.4f} {row['gain']:>+10.4f} [{row['gain_low']:+.4f}, {row['gain_high']:+.4f}]"
                  f" vs {row['best_trivial']:<9} {row['fallback_share']:>6.0%}")
            if policy == default:
                worst_gain = min(worst_gain, row["gain"])
    folds = comparison.folds[comparison.folds["scenario"] == comparison.folds["scenario"].iloc[0]]
    per_fold = {policy: part.sort_values(["repeat", "fold"])["curve_share_score"].to_numpy()
                for policy, part in folds.groupby("policy") if policy in (default, *baselines)}
    main = score.loc[default]
    goals = [
        (f"curve-share CI above zero ({main['curve_share_low']:.3f})", main["curve_share_low"] > 0),
        (f"edge share at 95 % >= {EDGE_95_RATIO} x random ({main['edge_95']:.3f} vs {random['edge_95']:.3f})",
         main["edge_95"] >= EDGE_95_RATIO * random["edge_95"]),
        (f"no preset below the better trivial policy by more than {MAX_LOSS} RCS (worst mean gain {worst_gain:+.4f})",
         worst_gain >= -MAX_LOSS),
    ]
    for baseline in baselines:
        gap = corrected_interval(per_fold[default] - per_fold[baseline], test_share)
        goals.append((f"curve share above {baseline}'s (paired gap {gap.mean:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}])",
                      gap.mean > 0))
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pair", action="append", help="EDGE/CLOUD; repeatable (default: the two DynaMath pairs).")
    parser.add_argument("--mes", type=float, default=1.0)
    parser.add_argument("--routers", default="lookup", help="Baselines beside the default router, comma-separated ROUTER[:RECIPE].")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rsd, features, scenarios = embedded_dataset(args)
    default = PolicySpec(DEFAULT_ROUTER, DEFAULT_RECIPE)
    baselines = [PolicySpec.parse(text) for text in args.routers.split(",") if text.strip()]
    test_share = 1 / (args.folds - 1)
    verdicts = []
    for pair in args.pair or PAIRS:
        edge, cloud = pair.split("/")
        started = time.perf_counter()
        comparison = compare_routers(rsd, features, edge=edge, cloud=cloud, scenarios=scenarios, policies=[default, *baselines],
                                     n_folds=args.folds, n_repeats=args.repeats, settings=CVSettings(), jobs=args.jobs)
        print(f"{rsd.info.name}: {edge} (edge) / {cloud} (cloud), MES {args.mes:g}, {args.folds} folds x {args.repeats} repeats, "
              f"{comparison.n_groups} groups kept whole, {time.perf_counter() - started:.0f} s")
        goals = report_pair(comparison, default.label, [b.label for b in baselines], test_share)
        for text, holds in goals:
            print(f"  [{'holds' if holds else 'FAILS'}] {text}")
        verdicts.append(all(holds for _, holds in goals))
        if args.out is not None:
            write_crossval_report(comparison.folds, comparison.summary, args.out / f"{edge}__{cloud}",
                                  title=f"{rsd.info.name}: {edge} (edge) / {cloud} (cloud)",
                                  settings={"folds": f"{args.folds} x {args.repeats}, grouped", "MES": args.mes},
                                  curves=comparison.curves)
    print(f"every goal holds on every pair: {all(verdicts)}")


if __name__ == "__main__":
    main()
