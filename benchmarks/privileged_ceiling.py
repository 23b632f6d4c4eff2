"""How much of the oracle's headroom a router could capture if it knew how hard each query is.

    .venv/bin/python benchmarks/privileged_ceiling.py --data DIR --edge E --cloud C [--mes M]
        [--folds 5] [--repeats 3] [--routers-folds REPORT_DIR/folds.csv ...]

The ``privileged`` policy knows, for every query, something no deployed router can see: the share of
the dataset's *other* models (neither the edge nor the cloud) whose answer reaches the MES, a measure of
the query's difficulty taken from the answers themselves. On each training fold it takes, for every value
of that share, the decision with the higher mean per-query RCS (the Bayes decision given the share, which
need not be monotone in it: both models fail the hardest queries and pass the easiest), and applies those
decisions to the test fold (a share never seen in training gets the training fold's better trivial
policy). The folds are those of ``ecvl-router evaluate-routers`` (seed 0), so its gain over the best
trivial policy is a yardstick for the routers of that command: on real data, where no ``bayes`` policy
exists, it says how much of the oracle's headroom is item-level luck that even an exact difficulty
measure does not predict.

With ``--routers-folds`` (the ``folds.csv`` of ``evaluate-routers`` runs on the same data, pair, MES and
folds; repeatable) the routers of those runs, and ``bayes`` on demo data, are listed beside it with the
share of the privileged policy's headroom each captures and its paired difference to that policy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ecvl_router.learning.crossval import Fold, corrected_interval, fold_strata, headroom_share, repeated_stratified_folds
from ecvl_router.data import load_rsd
from ecvl_router.data.rsd import RSD, PairView
from ecvl_router.features.features import QueryFeatures
from ecvl_router.learning.oof import per_query_rcs
from ecvl_router.learning.router_cv import TRIVIAL, CVInputs, CVSettings, cross_validate, fold_row, summarise
from ecvl_router.learning.routing_task import build_task
from ecvl_router.scenarios import SCENARIOS, Scenario

PRIVILEGED = "privileged"


def other_models_success(rsd: RSD, item_ids: np.ndarray, exclude: tuple[str, str], mes: float) -> np.ndarray:
    """Per item: the share of the models other than ``exclude`` that answered it with a score ≥ ``mes``."""
    responses = rsd.responses[~rsd.responses["model"].isin(exclude)]
    if responses.empty:
        raise SystemExit(f"{rsd.root}: no model besides {exclude[0]} and {exclude[1]}, nothing to measure difficulty with")
    success = (responses["score"] >= mes).groupby(responses["item_id"]).mean()
    missing = [item for item in item_ids if item not in success.index]
    if missing:
        raise SystemExit(f"{rsd.root}: no other model answered {len(missing)} item(s), e.g. {missing[0]!r}")
    return success.loc[item_ids].to_numpy(dtype=np.float64)


def no_features(item_ids: np.ndarray) -> QueryFeatures:
    """Zero-width features: the reference policies read nothing from the query."""
    n = len(item_ids)
    empty = np.zeros((n, 0), dtype=np.float32)
    return QueryFeatures(item_ids=item_ids, text=empty, image=empty, stats=empty, has_image=np.zeros(n, dtype=bool))


def group_decisions(groups: np.ndarray, pair: PairView, scenario: Scenario, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per test query: edge where, on the training queries of its group, routing to the edge had the higher mean RCS."""
    train_pair = pair.take(train)
    edge_minus_cloud = (per_query_rcs(np.ones(len(train), dtype=bool), train_pair, scenario)
                        - per_query_rcs(np.zeros(len(train), dtype=bool), train_pair, scenario))
    by_group = pd.Series(edge_minus_cloud).groupby(groups[train]).mean()
    unseen = float(edge_minus_cloud.mean())
    return by_group.reindex(groups[test]).fillna(unseen).to_numpy() > 0


def privileged_rows(groups: np.ndarray, pair: PairView, labels: np.ndarray, scenarios: list[Scenario], folds: list[Fold]) -> pd.DataFrame:
    """One row per (fold, scenario) of the privileged policy, in the columns of ``cross_validate``."""
    rows = []
    for fold in folds:
        test_pair = pair.take(fold.test)
        for scenario in scenarios:
            to_edge = group_decisions(groups, pair, scenario, fold.train, fold.test)
            rows.append(fold_row(fold, PRIVILEGED, scenario, to_edge, test_pair, labels[fold.test]))
    return pd.DataFrame(rows)


def with_routers(rows: pd.DataFrame, routers_folds: Path) -> pd.DataFrame:
    """``rows`` plus the policies of an evaluate-routers ``folds.csv`` not yet in them; its trivial rows must match fold for fold."""
    other = pd.read_csv(routers_folds)
    keys = ["repeat", "fold", "scenario", "policy"]
    mine = rows[rows["policy"].isin(TRIVIAL)].set_index(keys)["rcs"]
    theirs = other[other["policy"].isin(TRIVIAL)].set_index(keys)["rcs"]
    common = mine.index.intersection(theirs.index)
    if len(common) != len(mine) or not np.allclose(mine.loc[common], theirs.loc[common]):
        raise SystemExit(f"{routers_folds}: its trivial policies differ from these folds (another pair, MES or seed?)")
    routers = other[~other["policy"].isin([*TRIVIAL, "oracle", *rows["policy"].unique()])]  # bayes comes with every demo run
    return pd.concat([rows, routers[rows.columns.intersection(routers.columns)]], ignore_index=True)


def paired_to_privileged(rows: pd.DataFrame, test_share: float) -> pd.DataFrame:
    """Per (scenario, policy): mean and 95 % corrected interval of its RCS minus the privileged policy's, fold for fold."""
    wide = rows.pivot_table(index=["scenario", "repeat", "fold"], columns="policy", values="rcs")
    out = []
    for scenario, block in wide.groupby(level="scenario", sort=False):
        for policy in block.columns.drop(PRIVILEGED):
            interval = corrected_interval((block[policy] - block[PRIVILEGED]).to_numpy(), test_share)
            out.append({"scenario": scenario, "policy": policy, "minus_privileged": interval.mean,
                        "minus_privileged_low": interval.low, "minus_privileged_high": interval.high})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--edge", required=True)
    parser.add_argument("--cloud", required=True)
    parser.add_argument("--mes", type=float, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--routers-folds", type=Path, action="append", default=[])
    args = parser.parse_args()
    rsd = load_rsd(args.data)
    scenarios = [s.with_mes(args.mes) if args.mes is not None else s for s in SCENARIOS.values()]
    settings = CVSettings()
    task = build_task(rsd, args.edge, args.cloud, mes=scenarios[0].mes, rule="mes", k=1, seed=settings.seed)
    strata = fold_strata(task.pair.sources, task.labels, args.folds)
    privileged = other_models_success(rsd, task.pair.item_ids, (args.edge, args.cloud), task.mes)
    inputs = CVInputs(pair=task.pair, labels=task.labels, features=no_features(task.pair.item_ids), strata=strata)
    folds = repeated_stratified_folds(strata, n_folds=args.folds, n_repeats=args.repeats, seed=settings.seed)
    rows = pd.concat([cross_validate(inputs, [], scenarios, folds, settings),
                      privileged_rows(privileged, task.pair, task.labels, scenarios, folds)], ignore_index=True)
    for routers_folds in args.routers_folds:
        rows = with_routers(rows, routers_folds)
    test_share = 1 / (args.folds - 1)
    summary = summarise(rows, test_share).drop(columns=["headroom_bayes"], errors="ignore")
    mean_rcs = summary.set_index(["scenario", "policy"])["rcs"]
    summary["headroom_privileged"] = [
        headroom_share(row.rcs, mean_rcs[(row.scenario, row.best_trivial)], mean_rcs[(row.scenario, PRIVILEGED)])
        for row in summary.itertuples()
    ]
    summary = summary.merge(paired_to_privileged(rows, test_share), on=["scenario", "policy"], how="left")
    print(f"{rsd.info.name}: {args.edge} (edge) / {args.cloud} (cloud), MES {task.mes:g}, {len(task.pair)} queries, "
          f"{args.folds} folds × {args.repeats} repeats; privileged: the share of the other "
          f"{rsd.responses['model'].nunique() - 2} models reaching the MES")
    for row in summary[~summary["policy"].isin(TRIVIAL)].itertuples():
        paired = "" if row.policy in ("oracle", PRIVILEGED) else (
            f"  minus privileged {row.minus_privileged:+.4f} [{row.minus_privileged_low:+.4f}, {row.minus_privileged_high:+.4f}]")
        print(f"  {row.scenario:10s} {row.policy:16s} gain over {row.best_trivial} {row.gain:+.4f} [{row.gain_low:+.4f}, "
              f"{row.gain_high:+.4f}]  oracle headroom {row.headroom_oracle:6.1%}  privileged headroom "
              f"{row.headroom_privileged:6.1%}{paired}")


if __name__ == "__main__":
    main()
