"""Agreement between the judge's scores and human gold labels (the paper's Appendix A.3).

Human ratings come in a long CSV: one row per (item_id, model, rater) with the rater's score. The gold label
of a response is the mean over its raters.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

HUMAN_COLUMNS = ("item_id", "model", "rater", "score")
KEY = ["item_id", "model"]


class AgreementError(ValueError):
    """Human ratings cannot be read or matched; the message names the file, row and column."""


@dataclass(frozen=True)
class AgreementReport:
    """Judge-human agreement figures; correlations are NaN where they are undefined (fewer than 3 pairs or
    a constant series)."""

    n_responses: int
    n_raters: int
    n_ratings: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    within_1: float
    within_2: float
    mean_inter_rater_r: float
    bias_human_minus_judge: float
    t_statistic: float
    t_p_value: float
    per_rater_r: dict[str, float]
    per_rater_n: dict[str, int]
    unmatched_ratings: int

    def as_dict(self) -> dict:
        """The figures as JSON-ready values (NaN becomes None)."""

        def clean(value):
            if isinstance(value, dict):
                return {key: clean(item) for key, item in value.items()}
            return None if isinstance(value, float) and math.isnan(value) else value

        return clean(asdict(self))


def read_human_ratings(path: Path) -> pd.DataFrame:
    """Human ratings from a CSV with columns item_id, model, rater, score (other columns are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise AgreementError(f"{path}: file not found")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in HUMAN_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise AgreementError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(HUMAN_COLUMNS)})")
        rows, seen = [], {}
        for line, row in enumerate(reader, start=2):
            for name in ("item_id", "model", "rater"):
                if not (row[name] or "").strip():
                    raise AgreementError(f"{path}:{line}: column {name!r} is empty")
            try:
                score = float(row["score"])
            except (TypeError, ValueError):
                raise AgreementError(f"{path}:{line}: column 'score' is not a number: {row['score']!r}") from None
            if not math.isfinite(score):
                raise AgreementError(f"{path}:{line}: column 'score' must be finite, got {row['score']!r}")
            key = (row["item_id"].strip(), row["model"].strip(), row["rater"].strip())
            if key in seen:
                raise AgreementError(f"{path}:{line}: rater {key[2]!r} already scored ({key[0]}, {key[1]}) on line {seen[key]}")
            seen[key] = line
            rows.append((*key, score))
    if not rows:
        raise AgreementError(f"{path}: no ratings")
    return pd.DataFrame(rows, columns=list(HUMAN_COLUMNS))


def _correlation(method, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    result = method(x, y)
    return float(result.statistic), float(result.pvalue)


def _mean_inter_rater(human: pd.DataFrame) -> float:
    wide = human.pivot_table(index=KEY, columns="rater", values="score")
    values = []
    for a, b in itertools.combinations(wide.columns, 2):
        pair = wide[[a, b]].dropna()
        r, _ = _correlation(stats.pearsonr, pair[a].to_numpy(), pair[b].to_numpy())
        if not math.isnan(r):
            values.append(r)
    return float(np.mean(values)) if values else math.nan


def compute_agreement(judge_scores: pd.DataFrame, human: pd.DataFrame) -> tuple[AgreementReport, pd.DataFrame]:
    """Agreement of ``judge_scores`` (item_id, model, score) with ``human`` ratings; also returns the matched
    responses (item_id, model, judge, human) with the human mean."""
    judge = judge_scores[KEY + ["score"]].rename(columns={"score": "judge"})
    rated = human.merge(judge, on=KEY, how="inner")
    unmatched = len(human) - len(rated)
    matched = rated.groupby(KEY, sort=False).agg(judge=("judge", "first"), human=("score", "mean")).reset_index()
    if len(matched) < 3:
        raise AgreementError(f"only {len(matched)} rated response(s) have a judge score; at least 3 are needed")
    x, y = matched["judge"].to_numpy(float), matched["human"].to_numpy(float)
    pearson_r, pearson_p = _correlation(stats.pearsonr, x, y)
    spearman_rho, spearman_p = _correlation(stats.spearmanr, x, y)
    difference = y - x
    test = stats.ttest_rel(y, x)
    per_rater_r, per_rater_n = {}, {}
    for rater, rows in rated.groupby("rater", sort=True):
        per_rater_r[str(rater)] = _correlation(stats.pearsonr, rows["judge"].to_numpy(float), rows["score"].to_numpy(float))[0]
        per_rater_n[str(rater)] = len(rows)
    report = AgreementReport(
        n_responses=len(matched),
        n_raters=rated["rater"].nunique(),
        n_ratings=len(rated),
        pearson_r=pearson_r,
        pearson_p=pearson_p,
        spearman_rho=spearman_rho,
        spearman_p=spearman_p,
        within_1=float(np.mean(np.abs(difference) <= 1 + 1e-9)),
        within_2=float(np.mean(np.abs(difference) <= 2 + 1e-9)),
        mean_inter_rater_r=_mean_inter_rater(rated),
        bias_human_minus_judge=float(difference.mean()),
        t_statistic=float(test.statistic),
        t_p_value=float(test.pvalue),
        per_rater_r=per_rater_r,
        per_rater_n=per_rater_n,
        unmatched_ratings=unmatched,
    )
    return report, matched


def agreement_rows(report: AgreementReport) -> list[tuple[str, float, float | None, int]]:
    """The figures as (statistic, value, p-value, n) rows, per-rater correlations last."""
    n = report.n_responses
    rows = [
        ("pearson_r", report.pearson_r, report.pearson_p, n),
        ("spearman_rho", report.spearman_rho, report.spearman_p, n),
        ("within_1", report.within_1, None, n),
        ("within_2", report.within_2, None, n),
        ("mean_inter_rater_r", report.mean_inter_rater_r, None, report.n_raters),
        ("bias_human_minus_judge", report.bias_human_minus_judge, report.t_p_value, n),
        ("paired_t", report.t_statistic, report.t_p_value, n),
    ]
    rows += [(f"pearson_r[{rater}]", r, None, report.per_rater_n[rater]) for rater, r in report.per_rater_r.items()]
    return rows


def plot_agreement(matched: pd.DataFrame, path: Path, *, score_min: float, score_max: float, report: AgreementReport) -> None:
    """Scatter of human mean against judge score with the identity line, saved as PNG."""
    figure = Figure(figsize=(5, 5), dpi=120)
    axes = figure.add_subplot()
    axes.scatter(matched["judge"], matched["human"], s=14, alpha=0.45, edgecolors="none")
    axes.plot([score_min, score_max], [score_min, score_max], color="black", linewidth=1, linestyle="--", label="identity")
    axes.set_xlim(score_min - 0.5, score_max + 0.5)
    axes.set_ylim(score_min - 0.5, score_max + 0.5)
    axes.set_xlabel("judge score")
    axes.set_ylabel("human score (mean over raters)")
    axes.set_title(f"n = {report.n_responses}, Pearson r = {report.pearson_r:.3f}, Spearman ρ = {report.spearman_rho:.3f}", fontsize=9)
    axes.legend(loc="upper left")
    axes.set_aspect("equal")
    figure.tight_layout()
    figure.savefig(path)


def write_agreement(report: AgreementReport, matched: pd.DataFrame, out: Path, *, score_min: float, score_max: float) -> dict[str, Path]:
    """Write ``agreement.json``, ``agreement.csv``, ``agreement-pairs.csv`` and ``agreement.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"agreement{suffix}" for name, suffix in (("json", ".json"), ("csv", ".csv"), ("pairs", "-pairs.csv"), ("png", ".png"))}
    paths["json"].write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    with open(paths["csv"], "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["statistic", "value", "p_value", "n"])
        for name, value, p_value, n in agreement_rows(report):
            writer.writerow([name, "" if math.isnan(value) else f"{value:.6g}", "" if p_value is None or math.isnan(p_value) else f"{p_value:.6g}", n])
    matched.to_csv(paths["pairs"], index=False)
    plot_agreement(matched, paths["png"], score_min=score_min, score_max=score_max, report=report)
    return paths
