"""The paper's observations (Obs 1–7, sections 5.2–5.5) checked against a reproduction's results.

Each check states the criterion it applies, the verdict (holds / does not hold / not determined) and the
numbers behind it. The criteria are literal readings of the paper's claims; they say what the numbers show,
not whether a difference is statistically significant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecvl_router.experiments.main_table import ORACLE
from ecvl_router.experiments.mes_sweep import advantages
from ecvl_router.experiments.reproduce import ReproduceResults
from ecvl_router.experiments.router_latency import COMPONENTS
from ecvl_router.experiments.scale import from_paper_scale

HOLDS, FAILS, UNDETERMINED = "holds", "does not hold", "not determined"
MAX_APSP_DROP = 0.10
"""Obs 2: the paper's headline tolerates less than a 10 % relative APSP drop against all-at-large."""
TAU_RANGE = (0.7, 0.9)
MAX_ROUTING_SHARE = 0.02
"""Obs 5: the paper's router takes 1.7 % of its smallest model's latency; under 2 % counts as negligible."""


@dataclass(frozen=True)
class Observation:
    """One observation: its number, the paper's claim, the criterion applied, the verdict and the evidence."""

    number: int
    claim: str
    criterion: str
    verdict: str
    evidence: str


def _verdict(condition: bool) -> str:
    return HOLDS if condition else FAILS


def _means(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.groupby(keys, sort=False)[["apsp", "ca", "ail", "rcs", "tau"]].mean().reset_index()


def _obs1(results: ReproduceResults) -> Observation:
    means = _means(results.main_rows, ["pair", "scenario", "router"])
    means = means[means["router"] != ORACLE]
    cells, winners = 0, []
    for (pair, scenario), group in means.groupby(["pair", "scenario"], sort=False):
        best = group.loc[group["rcs"].idxmax(), "router"]
        cells += 1
        if best != "ecvl":
            winners.append(f"{best} on {pair} ({scenario})")
    wins = cells - len(winners)
    evidence = f"ecvl has the highest mean RCS in {wins} of {cells} pair × scenario cells"
    if winners:
        evidence += "; elsewhere the best is " + "; ".join(winners)
    return Observation(1, "ECVL-Router achieves the best composite score on every pair and scenario.",
                       "ecvl has the highest mean test RCS of all routers (oracle excluded) in every cell of Table 1.",
                       _verdict(not winners), evidence + ".")


def _obs2(results: ReproduceResults) -> Observation:
    scenario = results.settings.scenarios()[0].name
    means = _means(results.main_rows, ["pair", "scenario", "router"])
    means = means[means["scenario"] == scenario].set_index(["pair", "router"])
    facts, ok = [], True
    for pair in results.settings.pairs:
        ecvl, large = means.loc[(pair.label, "ecvl")], means.loc[(pair.label, "all-large")]
        drop = (large["apsp"] - ecvl["apsp"]) / large["apsp"] if large["apsp"] > 0 else np.nan
        faster = (large["ail"] - ecvl["ail"]) / large["ail"] if large["ail"] > 0 else np.nan
        ok &= bool(ecvl["ca"] >= 0.5 and drop < MAX_APSP_DROP and faster > 0)
        facts.append(f"{pair.label}: CA {ecvl['ca']:.3f}, APSP {ecvl['apsp']:.3f} vs {large['apsp']:.3f} "
                     f"({100 * drop:+.1f} % drop), AIL {100 * faster:.1f} % lower")
    return Observation(2, "ECVL-Router keeps most queries on the edge with a small quality loss and lower latency.",
                       f"At the {scenario} operating point on every pair: CA ≥ 0.5, relative APSP drop against all-large "
                       f"< {MAX_APSP_DROP:.0%}, and AIL below all-large's.", _verdict(ok), "; ".join(facts) + ".")


def _obs3(results: ReproduceResults) -> Observation:
    scenarios = [s.name for s in results.settings.scenarios()]
    means = _means(results.main_rows, ["pair", "scenario", "router"])
    ecvl = means[means["router"] == "ecvl"].pivot(index="pair", columns="scenario", values="tau")[scenarios]
    low, high = TAU_RANGE
    inside = ((ecvl >= low - 1e-9) & (ecvl <= high + 1e-9)).to_numpy()
    ordered = (ecvl[scenarios[0]] >= ecvl[scenarios[1:]].max(axis=1) - 1e-9).all()
    evidence = "; ".join(f"{pair}: " + ", ".join(f"{s} {row[s]:.2f}" for s in scenarios) for pair, row in ecvl.iterrows())
    return Observation(3, f"τ* is scenario-dependent and lies in [{low}, {high}]; the quality scenario takes the highest τ*.",
                       f"ecvl's mean τ* lies in [{low}, {high}] for every pair and scenario, and the {scenarios[0]} τ* is at "
                       "least every other scenario's on every pair.",
                       _verdict(bool(inside.all() and ordered)),
                       f"ecvl τ* — {evidence}; {int(inside.sum())} of {inside.size} in range.")


def _obs4(results: ReproduceResults) -> Observation:
    scale = (results.analysis.score_min, results.analysis.score_max)
    low, high = from_paper_scale(5, *scale), from_paper_scale(7, *scale)
    table = advantages(results.sweep_rows)
    ecvl = table[table["router"] == "ecvl"].groupby("mes")["advantage"].mean()
    middle = ecvl[(ecvl.index >= low - 1e-9) & (ecvl.index <= high + 1e-9)]
    outside = ecvl.drop(middle.index)
    criterion = (f"ecvl's RCS advantage over the best other router, averaged over scenarios, is positive for MES in "
                 f"[{low:g}, {high:g}] and larger there than at the other MES points.")
    evidence = "ecvl advantage per MES: " + ", ".join(f"{m:g}: {v:+.4f}" for m, v in ecvl.items())
    if middle.empty or outside.empty:
        return Observation(4, "ECVL-Router's gains are largest at medium difficulty (MES 5–7).", criterion, UNDETERMINED,
                           evidence + " (the sweep needs points inside and outside the range).")
    return Observation(4, "ECVL-Router's gains are largest at medium difficulty (MES 5–7).", criterion,
                       _verdict(bool(middle.mean() > 0 and middle.mean() > outside.mean())),
                       f"{evidence}; mean {middle.mean():+.4f} inside, {outside.mean():+.4f} outside.")


def _obs5(results: ReproduceResults) -> Observation:
    claim = "Routing latency is negligible next to the VLMs' latency; the image encoder dominates it."
    criterion = (f"The median end-to-end routing decision takes under {MAX_ROUTING_SHARE:.0%} of the main pair's edge "
                 "model's mean latency, and the image encoder is the slowest component.")
    if results.latency is None:
        return Observation(5, claim, criterion, UNDETERMINED, f"Table 2 was not measured: {results.latency_skipped}.")
    components = results.latency.component_table().set_index("component")["median_ms"]
    share = results.latency.model_table().set_index("model")["routing_share"][results.settings.main_pair.edge]
    slowest = components.drop(COMPONENTS[-1]).idxmax()
    return Observation(5, claim, criterion, _verdict(bool(share < MAX_ROUTING_SHARE and slowest == COMPONENTS[1])),
                       f"routing {components[COMPONENTS[-1]]:.1f} ms = {100 * share:.2f} % of {results.settings.main_pair.edge}; "
                       f"slowest component: {slowest} ({components[slowest]:.1f} ms).")


def _obs6(results: ReproduceResults) -> Observation:
    means = _means(results.ablation_rows, ["variant", "scenario"])
    rcs = means.pivot(index="variant", columns="scenario", values="rcs")
    full = rcs.loc["ecvl (full)"]
    removed = {v: float((rcs.loc[v] - full).mean()) for v in ("w/o text", "w/o image", "w/o statistics")}
    worst = min(removed, key=removed.get)
    image_beats_text = bool((rcs.loc["only image"] > rcs.loc["only text"]).all())
    return Observation(6, "The visual modality drives routing: dropping the image hurts most; image-only beats text-only.",
                       "Of the three 'w/o' variants, w/o image has the lowest RCS (mean over scenarios), and only image beats "
                       "only text in every scenario.", _verdict(worst == "w/o image" and image_beats_text),
                       "mean ΔRCS against the full router: " + ", ".join(f"{v} {d:+.4f}" for v, d in removed.items())
                       + f"; only image > only text in every scenario: {'yes' if image_beats_text else 'no'}.")


def _obs7(results: ReproduceResults) -> Observation:
    scenario = results.settings.scenarios()[0].name
    frame = pd.DataFrame(results.strategy_rows)
    rcs = frame[frame["scenario"] == scenario].groupby("strategy", sort=False)["rcs"].mean()
    best = rcs.idxmax()
    mes_name = results.settings.strategies[0].name
    return Observation(7, "Scenario-aware (MES rule) labels beat the single-objective win-hard / win-soft labels.",
                       f"The MES rule gives the highest {scenario} RCS (the paper's RCS1) of the label strategies in Table 4.",
                       _verdict(best == mes_name), f"{scenario} RCS: " + ", ".join(f"{k} {v:.4f}" for k, v in rcs.items()) + ".")


def check_observations(results: ReproduceResults) -> list[Observation]:
    """Obs 1–7 of the paper, each checked on ``results``."""
    return [check(results) for check in (_obs1, _obs2, _obs3, _obs4, _obs5, _obs6, _obs7)]
