"""The reproduction report: every table and figure with its caption, as report.md (+ PNGs, CSVs) and report.html."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ecvl_router.data.rsd import RSD
from ecvl_router.experiments.ablation import ABLATION_POLICIES
from ecvl_router.experiments.mes_sweep import SWEEP_ROUTERS, advantages, risk_map, sweep_means
from ecvl_router.experiments.model_pairs import pair_profiles
from ecvl_router.experiments.observations import check_observations
from ecvl_router.experiments.reproduce import NEURAL_ROUTERS, ReproduceResults
from ecvl_router.learning.guarantee_check import guarantee_figure
from ecvl_router.manifest import build_manifest, write_manifest
from ecvl_router.report import dataset_figures, experiment_figures
from ecvl_router.report.figures import threshold_sensitivity_figure
from ecvl_router.report.crossval_report import rcs_figure, summary_markdown
from ecvl_router.report.html import render_html
from ecvl_router.report.main_report import FIXED_POLICIES
from ecvl_router.report.tables import grouped_table, markdown_grid, scenario_table, write_csv
from ecvl_router.routers import router_class, router_hyperparameters
from ecvl_router.learning.thresholds import THRESHOLD_GRID

PAPER_EPOCHS = 50
PAPER_TREES = 100
BARTSCORE_NOTE = (
    "The paper's BARTScore row (Hybrid-LLM's quality metric: the log-likelihood of each routed response given "
    "its reference under a BART model) is left out: it needs a BART checkpoint, which ecvl-router does not ship "
    "and cannot download offline, and the dataset's judge scores already measure answer quality (APSP, PGR)."
)


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_reproduce_report`` wrote."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    tables: tuple[Path, ...]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def _literal_stars(text: str) -> str:
    """``τ*`` with its star escaped, so that Markdown does not read two of them as emphasis."""
    return text.replace("τ*", "τ\\*")


class _Document:
    """Markdown chunks with numbered-by-the-paper tables and figures, each with its caption."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[str] = []
        self.figures: list[Path] = []
        self.tables: list[Path] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"{'#' * level} {_literal_stars(text)}\n")

    def text(self, paragraph: str) -> None:
        self.parts.append(_literal_stars(paragraph.strip()) + "\n")

    def code(self, text: str, language: str = "json") -> None:
        self.parts.append(f"```{language}\n{text}\n```\n")

    def table(self, label: str, caption: str, header: Sequence[str], body: Sequence[Sequence[str]]) -> None:
        self.parts.append(f"**{label}.** {_literal_stars(caption.strip())}\n")
        self.parts.append(markdown_grid([_literal_stars(h) for h in header], body))

    def figure(self, path: Path, label: str, caption: str) -> None:
        self.figures.append(path)
        self.parts.append(f"![{label}]({path.name})\n\n*{label}.* {_literal_stars(caption.strip())}\n")

    def csv(self, rows: Sequence[dict[str, Any]], name: str) -> str:
        path = write_csv(rows, self.folder / name)
        self.tables.append(path)
        return name

    def markdown(self) -> str:
        return "\n".join(self.parts)


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def _scenario_legend(results: ReproduceResults) -> str:
    scenarios = results.settings.scenarios()
    items = "; ".join(f"`{s.name}` (RCS{i}: α {s.alpha:g}, β {s.beta:g}, γ {s.gamma:g})" for i, s in enumerate(scenarios, 1))
    return f"Scenarios at MES {results.settings.mes:g}: {items}."


def _seeds_text(seeds: Sequence[int]) -> str:
    return "one seed" if len(seeds) == 1 else f"mean ± standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))})"


def _introduction(doc: _Document, results: ReproduceResults, rsd: RSD) -> None:
    settings = results.settings
    doc.heading(f"Reproduction of the ECVL-Router experiments on `{rsd.info.name}`", level=1)
    if rsd.info.description:
        doc.text(f"Dataset: {rsd.info.description}")
    doc.text(
        f"Model pairs (cloud / edge): {', '.join(p.label for p in settings.pairs)}. The main pair of the single-pair "
        f"experiments (Tables 2–4 and 8, Figures 9, 11 and 12) is **{settings.main_pair.label}**. Seeds: "
        f"{', '.join(map(str, settings.seeds))}{' (quick run: fewer epochs and MES points, one seed)' if settings.quick else ''}. "
        f"{_scenario_legend(results)}"
    )
    for note in settings.notes:
        doc.text(note)
    doc.text(
        "How to read: every metric is measured on the held-out test split. APSP is the share of queries whose routed "
        "answer scores at least the MES, CA the share routed to the edge model, AIL the mean latency of the routed "
        "answers in seconds, RCS = α·APSP + β·CA − γ·AIL. Each learned router's τ* is chosen per scenario on the "
        "validation split (grid 0, 0.05, …, 1). The settings, the dataset's manifest and the wall time are at the end."
    )


def _observations_section(doc: _Document, results: ReproduceResults) -> None:
    doc.heading("The paper's observations on this dataset")
    doc.text(
        "Each of the paper's observations (Obs 1–7, sections 5.2–5.5), read as a literal criterion and checked against the "
        "tables and figures below. A verdict says what the numbers show, not whether a difference is statistically "
        "significant: compare small margins with the seed spread of Table 1."
    )
    doc.text("\n".join(f"- **Obs {o.number} — {o.verdict}.** {o.claim} *Criterion:* {o.criterion} *Evidence:* {o.evidence}"
                        for o in check_observations(results)))


def _dataset_section(doc: _Document, results: ReproduceResults) -> None:
    analysis = results.analysis
    summary = analysis.summary
    doc.heading("Dataset analysis (Appendix A.4, Figures 3–7)")
    header = ["items", "responses", "models", "sources", "score scale", "score mean", "score median", "latency mean [s]",
              *[f"P{q} [s]" for q in analysis.latency_percentiles]]
    body = [[f"{summary['items']:,}", f"{summary['responses']:,}", str(len(analysis.by_model)), str(len(analysis.by_source)),
             f"{analysis.score_min:g}–{analysis.score_max:g}", _fmt(summary["score_mean"], 2), _fmt(summary["score_median"], 2),
             _fmt(summary["latency_mean"], 2), *[_fmt(v, 2) for v in analysis.latency_percentiles.values()]]]
    doc.table("Dataset summary", "Counts and the score and latency statistics over every response of the dataset.", header, body)
    figures = (
        ("figure3_score_histogram.png", dataset_figures.score_histogram, "Figure 3: score distribution",
         "Histogram of the judge scores of every response of every model; dashed line: mean, dotted: median."),
        ("figure4_score_breakdown.png", dataset_figures.score_breakdown, "Figure 4: score by source and by model",
         "(a) Mean score per source with its standard error (SE = std / √n over that source's responses of every model), "
         "easiest source on top. (b) Boxplots of each model's scores on the same items; ◇ and the number mark the mean."),
        ("figure5_latency_distribution.png", dataset_figures.latency_distribution, "Figure 5: latency distribution",
         "(a) Histogram of the end-to-end latency of every response (cut at the 99.5th percentile for readability), mean and "
         "median marked. (b) Latency at every percentile; P50, P75, P90 and P99 marked."),
        ("figure6_latency_breakdown.png", dataset_figures.latency_breakdown, "Figure 6: latency by model and by source",
         "(a) Per-model latency boxplots over the same items (median labelled; whiskers at 1.5 IQR, outliers hidden). "
         "(b) Mean latency per source over every model's responses, slowest on top."),
        ("figure7_model_source_heatmaps.png", dataset_figures.model_source_heatmaps, "Figure 7: model × source heatmaps",
         "Per model (rows) and source (columns): (a) mean score, (b) median latency in seconds, (c) score per second = "
         "(a) / (b), (d) standard deviation of the scores; in (d), bold numbers exceed the average cell."),
    )
    for name, draw, label, caption in figures:
        doc.figure(draw(analysis, doc.folder / name), label, caption)


def _main_section(doc: _Document, results: ReproduceResults) -> None:
    scenarios = results.settings.scenarios()
    names = [s.name for s in scenarios]
    doc.heading("Table 1: routers on every model pair and scenario (Figures 2 and 8)")
    csv = doc.csv(results.main_rows, "table1.csv")
    doc.table(
        "Table 1", f"Every router on every pair and scenario, test split, {_seeds_text(results.settings.seeds)}. For each scenario, APSP, CA "
        "and AIL are measured at that scenario's own operating point τ* (chosen on validation to maximise that scenario's "
        "RCS), so RCS = α·APSP + β·CA − γ·AIL holds within each scenario's columns. `random` routes at τ = 0.5, `all-large` "
        "sends every query to the cloud and `all-small` to the edge; `oracle` routes by the true competence label (upper "
        f"bound, no τ). {_training_text(results)}. Raw rows: `{csv}`.",
        *scenario_table(results.main_rows, names),
    )
    for result in results.first_seed_results:
        learned = {r: p for r, p in result.probabilities.items() if r not in FIXED_POLICIES}
        view, _ = result.task.view("test")
        path = threshold_sensitivity_figure(
            learned, result.taus, view, list(scenarios), THRESHOLD_GRID, doc.folder / f"figure2_tau_sensitivity_{_slug(result.pair.label)}.png",
            title=f"Impact of τ: {result.pair.label}, MES {results.settings.mes:g}",
        )
        doc.figure(path, f"Figure 2 ({result.pair.label})",
                   f"Sensitivity to the decision threshold τ on the test split (seed {result.task.seed}): APSP, CA and AIL "
                   f"(top, {names[0]} weights) and each scenario's RCS (bottom) of every learned router at every τ of the grid; "
                   "★ marks the τ* chosen on validation.")
    profiles = pair_profiles(results.main_rows, scenarios)
    path = experiment_figures.pair_radar(profiles, scenarios, doc.folder / "figure8_pair_radar.png")
    doc.figure(path, "Figure 8: across model pairs",
               f"One radar per pair for ecvl, all-large and all-small ({_seeds_text(results.settings.seeds)}): APSP, CA and AIL at the "
               f"{names[0]} operating point, each scenario's RCS at its own; AIL is divided by the constant on its axis "
               "(5 as in the paper, more when some AIL exceeds 5 s). Larger is better on every axis but AIL.")


def _training_text(results: ReproduceResults) -> str:
    """How long the learned routers trained: epochs of the neural routers and gbdt's boosting rounds."""
    params = results.settings.router_params

    def setting(name: str, key: str) -> Any:
        return params.get(name, {}).get(key, router_hyperparameters(router_class(name))[key])

    epochs = {name: setting(name, "epochs") for name in NEURAL_ROUTERS}
    if len(set(epochs.values())) == 1:
        count = next(iter(epochs.values()))
        text = f"{', '.join(epochs)} train for {count} epochs" + (" (the paper's)" if count == PAPER_EPOCHS else "")
    else:
        text = ", ".join(f"{name} trains for {count} epochs" for name, count in epochs.items())
    trees = setting("gbdt", "max_iter")
    return f"{text}; gbdt boosts {trees} trees" + (" (the paper's)" if trees == PAPER_TREES else "")


def _latency_section(doc: _Document, results: ReproduceResults) -> None:
    doc.heading("Table 2: routing latency")
    latency = results.latency
    if latency is None:
        doc.text(f"*Table 2 was not measured: {results.latency_skipped}.*")
        return
    components = latency.component_table()
    total = components["median_ms"].iloc[-1]
    doc.csv(components.to_dict("records"), "table2_latency.csv")
    doc.table(
        "Table 2a", f"Latency of each routing component at batch 1 on {latency.queries} dataset queries with an image, "
        "timed interleaved query by query on this machine's CPU (median and 95th percentile). Text encoder, image encoder "
        "(decoded image) and statistics are timed alone; the fusion is the trained ecvl router's forward pass from features "
        "to P(edge competent); the end-to-end decision is `FeatureExtractor.extract_one` on the image file (the two "
        "encoders overlapped in two threads, image decoding included) followed by the router and its τ*, so it can be "
        "less than the sum of the parts.",
        ["component", "median [ms]", "P95 [ms]", "median as % of end to end"],
        [[row.component, _fmt(row.median_ms, 2), _fmt(row.p95_ms, 2), f"{100 * row.median_ms / total:.1f}%"]
         for row in components.itertuples()],
    )
    doc.table(
        "Table 2b", "The median end-to-end routing decision against each model's mean latency in the dataset.",
        ["model", "mean latency in the dataset [s]", "routing as % of it"],
        [[row.model, _fmt(row.mean_latency_s, 3), f"{100 * row.routing_share:.2f}%"] for row in latency.model_table().itertuples()],
    )


def _ablation_section(doc: _Document, results: ReproduceResults) -> None:
    names = [s.name for s in results.settings.scenarios()]
    doc.heading("Table 3: ablation of the ecvl router's branches")
    csv = doc.csv(results.ablation_rows, "table3_ablation.csv")
    doc.table(
        "Table 3", f"The ecvl router on {results.settings.main_pair.label} with every branch (text embedding, image embedding, "
        "query statistics), without one, or with only one, each trained and its τ* chosen per scenario exactly like Table 1; "
        f"then {', '.join(ABLATION_POLICIES)}. Test split, {_seeds_text(results.settings.other_seeds)}; each scenario at its own operating point. "
        f"Raw rows: `{csv}`.",
        *scenario_table(results.ablation_rows, names, row_keys=("variant",)),
    )


def _strategies_section(doc: _Document, results: ReproduceResults) -> None:
    doc.heading("Table 4: label strategies")
    csv = doc.csv(results.strategy_rows, "table4_label_strategies.csv")
    columns = [("apsp", "APSP ↑", 3), ("ca", "CA ↑", 3), ("ail", "AIL [s] ↓", 3), ("tau", "τ*", 2), ("rcs", "RCS ↑", 4),
               ("accuracy", "ACC own labels ↑", 3), ("accuracy_mes", "ACC MES labels ↑", 3), ("pgr", "PGR ↑", 3),
               ("token_saving", "token saving ↑", 0), ("time_saving", "time saving [s] ↑", 1)]
    strategies = ", ".join(s.name for s in results.settings.strategies)
    order = {scenario.name: index for index, scenario in enumerate(results.settings.scenarios())}
    doc.table(
        "Table 4", f"The ecvl router trained on each label strategy ({strategies}) on {results.settings.main_pair.label}: the "
        "MES rule (Eq. 2), win-hard (edge score ≥ cloud score) and win-soft(k) (edge score + k ≥ cloud score). Every strategy "
        "uses the same stratified split and test queries and the same metrics; τ* is chosen per scenario on validation. "
        "APSP is at the scenario's MES; ACC is the routing accuracy against the strategy's own labels and against the MES "
        "rule's; PGR is the share of the edge-to-cloud gap in mean score that the routing recovers; token and time saving "
        "are the output tokens and seconds saved on the test split against sending everything to the cloud. The paper's "
        f"Table 4 is the quality scenario's block. Test split, {_seeds_text(results.settings.other_seeds)}. Raw rows: `{csv}`.",
        *grouped_table(sorted(results.strategy_rows, key=lambda row: order[row["scenario"]]), ("scenario", "strategy"), columns),
    )
    doc.text(f"*{BARTSCORE_NOTE}*")


def _alignment_section(doc: _Document, results: ReproduceResults) -> None:
    doc.heading("Figure 9: validation–test alignment of τ")
    result = results.first_seed_results[0]
    path = experiment_figures.alignment_figure(results.alignment, doc.folder / "figure9_validation_test_alignment.png",
                                               title=f"RCS against τ on validation and test: ecvl, {result.pair.label}")
    doc.figure(path, "Figure 9: validation against test",
               f"The ecvl router on {result.pair.label} (seed {result.task.seed}), with the state kept for each scenario: RCS "
               "at every τ of the grid on the validation split (solid) and the test split (dashed); the dotted line is τ*. "
               "Pearson r is the correlation of the two curves, mean |Δ| their mean absolute difference.")
    doc.table("Figure 9 values", "Agreement of the validation and test RCS curves per scenario.",
              ["scenario", "τ*", "Pearson r", "mean |Δ|"],
              [[c.scenario, f"{c.tau:.2f}", _fmt(c.pearson), _fmt(c.mean_abs_diff, 4)] for c in results.alignment])


def _sweep_section(doc: _Document, results: ReproduceResults) -> None:
    scenarios = results.settings.scenarios()
    first = scenarios[0].name
    points = ", ".join(f"{m:g}" for m in results.settings.mes_points)
    doc.heading("Figures 11 and 12: the MES sweep")
    csv = doc.csv(results.sweep_rows, "mes_sweep.csv")
    doc.text(
        f"At each MES ({points}) the labels (MES rule) and the scenarios' MES change, and every router ({', '.join(SWEEP_ROUTERS)}) "
        f"is retrained on {results.settings.main_pair.label} and its τ* searched again on validation; test split, "
        f"{_seeds_text(results.settings.other_seeds)}. Raw rows: `{csv}`."
    )
    risk = risk_map(results.sweep_rows, first)
    path = experiment_figures.risk_map_figure(risk, doc.folder / "figure11_mes_risk_map.png",
                                              title=f"MES risk map: ecvl on {results.settings.main_pair.label}")
    doc.figure(path, "Figure 11: MES risk map",
               f"The ecvl router's CA (bars, left axis) and failure rate = 1 − APSP, the share of queries whose routed answer "
               f"scores below the MES (line, right axis), at the {first} operating point per MES. Background bands follow "
               "the measured failure rate: safe below 20 %, caution from 20 % to 50 %, high risk from 50 %.")
    doc.table("Figure 11 values", "The numbers behind Figure 11.", ["MES", "CA", "APSP", "failure rate", "band"],
              [[f"{r.mes:g}", _fmt(r.ca), _fmt(r.apsp), f"{100 * r.failure_rate:.1f}%", r.band] for r in risk.itertuples()])
    means, advantage = sweep_means(results.sweep_rows), advantages(results.sweep_rows)
    learned = [r for r in SWEEP_ROUTERS if r not in FIXED_POLICIES]
    path = experiment_figures.mes_sweep_figure(means, advantage, scenarios, doc.folder / "figure12_mes_sweep.png",
                                               title=f"Impact of the MES: {results.settings.main_pair.label}", learned=learned)
    doc.figure(path, "Figure 12: metrics and advantage against the MES",
               f"(a) APSP, CA and AIL of every router against the MES at the {first} operating point. (b) Per scenario, each "
               "learned router's RCS minus the best RCS among all the other routers (fixed policies included): above zero it "
               "is the best router by that margin over the second best, below zero it trails the best.")
    pivot = advantage[advantage["router"] == "ecvl"].pivot(index="mes", columns="scenario", values="advantage")
    doc.table("Figure 12 values", "The ecvl router's RCS advantage over the best other router per MES and scenario.",
              ["MES", *[s.name for s in scenarios]],
              [[f"{mes:g}", *[f"{row[s.name]:+.4f}" for s in scenarios]] for mes, row in pivot.iterrows()])


def _cross_domain_section(doc: _Document, results: ReproduceResults) -> None:
    names = [s.name for s in results.settings.scenarios()]
    settings = results.settings
    doc.heading("Table 8: cross-domain generalisation")
    csv = doc.csv(results.cross_domain_rows, "table8_cross_domain.csv")
    n_test = int(pd.DataFrame(results.cross_domain_rows)["n_test"].iloc[0])
    doc.table(
        "Table 8", f"Routers on {settings.main_pair.label} trained and validated (stratified 3:1) on every source except "
        f"{', '.join(settings.holdout_sources)}, and tested on those held-out sources alone ({n_test} queries); each scenario "
        f"at its own operating point, {_seeds_text(results.settings.other_seeds)}. Raw rows: `{csv}`.",
        *scenario_table(results.cross_domain_rows, names, row_keys=("router",)),
    )


def _comparison_section(doc: _Document, results: ReproduceResults) -> None:
    comparison, settings = results.comparison, results.settings
    if comparison is None:
        return
    doc.heading("Cross-validated router comparison")
    doc.text(
        f"Every router of the comparison on {settings.main_pair.label} ({comparison.n_queries} queries), trained inside each "
        f"training fold of {settings.comparison_folds}-fold cross-validation repeated {settings.comparison_repeats} time(s) "
        "and scored on the test fold it never saw. `ROUTER` is the paper's recipe (best epoch and τ on a 25 % validation part "
        "of the training fold); `ROUTER:oof` the out-of-fold recipe (calibrated ensemble of inner-fold routers, τ on "
        "out-of-fold predictions, fallback to the better trivial policy when it does not beat it). Cells are means with 95 % "
        "confidence intervals (corrected resampled t); the gain is paired per fold against the better trivial policy and "
        "`*` marks an interval that excludes zero. Headroom: (RCS − best trivial) / (reference − best trivial)"
        + ("; bayes routes on the simulation's true probabilities, the best any router can do from the query alone." if comparison.has_bayes else ".")
    )
    doc.parts.append(summary_markdown(comparison.summary))
    doc.csv(comparison.summary.to_dict("records"), "comparison_summary.csv")
    doc.csv(comparison.folds.to_dict("records"), "comparison_folds.csv")
    path = rcs_figure(comparison.summary, doc.folder / "comparison_rcs.png", title=f"{settings.main_pair.label}: RCS per router")
    doc.figure(path, "Figure R (router comparison)", "RCS per router with 95 % confidence intervals; the dashed line is the better trivial policy.")


def _guarantee_section(doc: _Document, results: ReproduceResults) -> None:
    check, settings = results.guarantee, results.settings
    if check is None:
        return
    names = [s.name for s in settings.scenarios()]
    doc.heading("Quality guarantee on fresh data")
    summary = check.summary
    repetitions = int(summary["repetitions"].iloc[0])
    doc.text(
        f"Guaranteed scenarios (docs/guarantees.md) on {settings.main_pair.label} at MES {settings.mes:g}: a {settings.guarantee_router} "
        f"router fitted out of fold once ({len(check.pair)} queries), then {repetitions} random 50/50 calibration/test splits. "
        "On each, τ is certified on the calibration half (fixed-sequence testing, exact binomial bounds) and the test half "
        "gives the realised quality drop (APSP of all-at-large minus APSP of the routed answers) and edge share. A violation is "
        "a test drop above max_quality_drop; the promise holds when the violation rate is at most 1 − confidence (allowed: "
        f"plus two Monte-Carlo standard errors). Next to it, the {names[0]} scenario's RCS-maximising τ, which promises nothing."
    )
    guaranteed = summary[summary["policy"] == "guaranteed"].set_index(["confidence", "max_quality_drop"])
    unpromised = summary[summary["policy"] == "rcs"].set_index(["confidence", "max_quality_drop"])
    body = [[f"{confidence:g}", f"{drop:g}", _fmt(row["edge_share"]), _fmt(row["drop_mean"], 4), _fmt(row["violation_rate"]),
             _fmt(1 - confidence + 2 * row["violation_se"]), "yes" if row["within_bound"] else "**no**",
             _fmt(unpromised.loc[(confidence, drop), "edge_share"]), _fmt(unpromised.loc[(confidence, drop), "violation_rate"])]
            for (confidence, drop), row in guaranteed.sort_index().iterrows()]
    csv = doc.csv(summary.to_dict("records"), "guarantee_summary.csv")
    doc.table(
        "Table G", f"The guaranteed τ on the test halves: mean edge share and drop, violation rate and what the promise allows; "
        f"then the RCS-maximising τ's edge share and violation rate at the same bound. All policies (also a plug-in τ without "
        f"margin and a τ matched to the guaranteed edge share): `{csv}`.",
        ["confidence", "max_quality_drop", "edge share", "mean drop", "violation rate", "allowed", "within",
         f"{names[0]} τ: edge share", f"{names[0]} τ: violation rate"],
        body,
    )
    path = guarantee_figure(summary, doc.folder / "guarantee.png")
    doc.figure(path, "Figure G (quality guarantee)",
               "Left: mean edge share of the guaranteed τ against max_quality_drop, one line per confidence. Right: the realised "
               "violation rate with 2 Monte-Carlo standard errors; dashed lines: the allowed 1 − confidence.")


def _provenance_section(doc: _Document, results: ReproduceResults, rsd: RSD, wall_seconds: float) -> None:
    doc.heading("Settings, seeds, dataset and wall time")
    doc.text(f"Wall time: **{wall_seconds:.0f} s** ({wall_seconds / 60:.1f} min) from start to writing this report, on this "
             f"machine. Routers trained in this run: {results.ledger.trained}; reused from the cache: {results.ledger.reused}.")
    doc.table("Experiment times", "Seconds per experiment in this run (figures and report writing not included).",
              ["experiment", "seconds"], [[name, f"{seconds:.1f}"] for name, seconds in results.seconds.items()])
    doc.text("Settings:")
    doc.code(json.dumps(results.settings.describe(), indent=2, default=str))
    doc.text(f"Dataset `{rsd.info.name}` at `{rsd.root}` (score scale {rsd.info.score_min:g}–{rsd.info.score_max:g}); its manifest:")
    doc.code(json.dumps(rsd.manifest or {"manifest": "none"}, indent=2, default=str))


def write_reproduce_report(results: ReproduceResults, rsd: RSD, out_dir: Path, *, wall_seconds: float) -> ReportFiles:
    """Write report.md, the PNG figures and CSV tables beside it, report.html (figures embedded) and manifest.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = _Document(out_dir)
    _introduction(doc, results, rsd)
    _observations_section(doc, results)
    _dataset_section(doc, results)
    _main_section(doc, results)
    _latency_section(doc, results)
    _ablation_section(doc, results)
    _strategies_section(doc, results)
    _alignment_section(doc, results)
    _sweep_section(doc, results)
    _cross_domain_section(doc, results)
    _comparison_section(doc, results)
    _guarantee_section(doc, results)
    _provenance_section(doc, results, rsd, wall_seconds)
    text = doc.markdown()
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(text, encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(text, out_dir, title=f"ECVL-Router reproduction: {rsd.info.name}"), encoding="utf-8")
    write_manifest(out_dir, build_manifest(
        "reproduce",
        inputs={"data": str(rsd.root), "data_manifest": rsd.manifest},
        settings=results.settings.describe(),
        wall_seconds=wall_seconds,
        routers_trained=results.ledger.trained,
        routers_reused=results.ledger.reused,
        files=[p.name for p in (markdown_path, html_path, *doc.figures, *doc.tables)],
    ))
    return ReportFiles(markdown_path, html_path, tuple(doc.figures), tuple(doc.tables))
