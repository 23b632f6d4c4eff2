"""The study report (the analogue of the paper's Figure 10): APSP and latency per policy and scenario.

APSP is the share of rated answers that satisfied the participant: a rating at or above the scenario's
MES, or "yes" on the yes/no scale; its 95 % confidence interval is Wilson's. Latency is the time from the
question reaching the gateway to the last word of the answer, in seconds; its interval is Student's t
interval of the mean. Cells with fewer than ``min_ratings`` ratings are flagged: too few for a conclusion.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ecvl_router.study.store import SCHEMA_VERSION

CONFIDENCE = 0.95
DEFAULT_MIN_RATINGS = 10
SUMMARY_CSV, PARTICIPANTS_CSV, RATINGS_CSV = "study_summary.csv", "study_participants.csv", "study_ratings.csv"
FIGURE_PNG, SUMMARY_MD = "study_figure.png", "study_report.md"


class StudyReportError(ValueError):
    """The database cannot be reported on: missing, not a study database, or without ratings."""


@dataclass(frozen=True)
class StudyData:
    """A study database's rated answers (one row each), its policies in study order, and its counts."""

    ratings: pd.DataFrame
    policies: list[str]
    scenarios: list[str]
    counts: dict[str, int]


@dataclass(frozen=True)
class StudyReport:
    """The report's tables and where its files were written."""

    summary: pd.DataFrame
    participants: pd.DataFrame
    too_few: pd.DataFrame
    files: dict[str, Path]


# ---------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN without observations)."""
    if n == 0:
        return math.nan, math.nan
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and Student's t interval of the mean (the interval is NaN for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(values))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, values.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def summarize(ratings: pd.DataFrame, by: list[str], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per group of ``by``: ratings, participants, APSP with its Wilson interval, latency with its t interval, edge share."""
    rows = []
    for key, group in ratings.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        satisfied = int(group["satisfied"].sum())
        apsp_low, apsp_high = wilson_interval(satisfied, len(group), confidence)
        latency, latency_low, latency_high = mean_interval(group["latency_s"].to_numpy(), confidence)
        rows.append({
            **dict(zip(by, key)),
            "ratings": len(group),
            "participants": group["participant"].nunique(),
            "satisfied": satisfied,
            "apsp": satisfied / len(group),
            "apsp_low": apsp_low,
            "apsp_high": apsp_high,
            "latency_s": latency,
            "latency_low": latency_low,
            "latency_high": latency_high,
            "edge_share": float((group["route"] == "edge").mean()),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- reading
def load_study(database: Path) -> StudyData:
    """The rated answers of a study database (opened read-only)."""
    database = Path(database)
    if not database.is_file():
        raise StudyReportError(f"{database}: no such study database")
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StudyReportError(f"{database}: cannot open it as SQLite ({exc})") from None
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if not 1 <= version <= SCHEMA_VERSION:
            raise StudyReportError(f"{database}: not a study database of this ecvl-router (schema version {version})")
        ratings = pd.read_sql_query(
            """SELECT q.id AS query, s.participant_id AS participant, s.scenario, s.mes, s.policy, q.route, q.model,
                      q.fallback, q.latency_ms, q.first_token_ms, r.scale, r.score, r.meets, r.created_at AS rated_at
               FROM ratings r JOIN queries q ON q.id = r.query_id JOIN sessions s ON s.id = q.session_id
               ORDER BY r.created_at""",
            connection,
        )
        meta = dict(connection.execute("SELECT key, value FROM study_meta").fetchall())
        scenarios = [row[0] for row in connection.execute("SELECT scenario FROM sessions GROUP BY scenario ORDER BY MIN(created_at)")]
        counts = {
            "participants": connection.execute("SELECT COUNT(*) FROM participants").fetchone()[0],
            "sessions": connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0],
            "questions": connection.execute("SELECT COUNT(*) FROM queries").fetchone()[0],
            "answered": connection.execute("SELECT COUNT(*) FROM queries WHERE status = 'answered'").fetchone()[0],
            "ratings": len(ratings),
        }
    except sqlite3.Error as exc:
        raise StudyReportError(f"{database}: not a readable study database ({exc})") from None
    finally:
        connection.close()
    policies = json.loads(meta["policies"]) if "policies" in meta else sorted(ratings["policy"].unique())
    ratings["satisfied"] = np.where(ratings["scale"] == "score", ratings["score"] >= ratings["mes"], ratings["meets"] == 1)
    ratings["latency_s"] = ratings["latency_ms"] / 1000
    return StudyData(ratings, policies, scenarios, counts)


# ---------------------------------------------------------------------- writing
def write_study_report(database: Path, out: Path, *, min_ratings: int = DEFAULT_MIN_RATINGS) -> StudyReport:
    """CSV tables, the figure and a Markdown summary of a study database in ``out``."""
    data = load_study(database)
    if data.ratings.empty:
        raise StudyReportError(
            f"{database}: no rated answers yet ({data.counts['questions']} questions asked by {data.counts['participants']} "
            "participants); there is nothing to report"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ratings = _ordered(data.ratings, data)
    summary = summarize(ratings, ["scenario", "mes", "policy"])
    participants = summarize(ratings, ["participant", "scenario", "policy"])
    too_few = summary[summary["ratings"] < min_ratings]
    files = {
        "summary": out / SUMMARY_CSV,
        "participants": out / PARTICIPANTS_CSV,
        "ratings": out / RATINGS_CSV,
        "figure": out / FIGURE_PNG,
        "markdown": out / SUMMARY_MD,
    }
    summary.to_csv(files["summary"], index=False)
    participants.to_csv(files["participants"], index=False)
    ratings.drop(columns=["latency_ms"]).to_csv(files["ratings"], index=False)
    _figure(summary, files["figure"])
    files["markdown"].write_text(_markdown(database, data, summary, participants, too_few, min_ratings), encoding="utf-8")
    return StudyReport(summary, participants, too_few, files)


def _ordered(ratings: pd.DataFrame, data: StudyData) -> pd.DataFrame:
    """Ratings sorted by scenario (in the order the study started them) and policy (in the study's order)."""
    policies = data.policies + sorted(set(ratings["policy"]) - set(data.policies))
    ratings = ratings.assign(
        scenario=pd.Categorical(ratings["scenario"], categories=data.scenarios, ordered=True),
        policy=pd.Categorical(ratings["policy"], categories=policies, ordered=True),
    )
    ratings = ratings.sort_values(["scenario", "policy", "rated_at"], kind="stable")
    return ratings.assign(scenario=ratings["scenario"].astype(str), policy=ratings["policy"].astype(str))


def _figure(summary: pd.DataFrame, path: Path) -> None:
    from ecvl_router.report.figures import pyplot, save_figure

    plt = pyplot()
    scenarios = list(dict.fromkeys(summary["scenario"]))
    policies = list(dict.fromkeys(summary["policy"]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(policies)
    colours = plt.get_cmap("tab10")
    for column, (value, low, high, label) in enumerate(
        (("apsp", "apsp_low", "apsp_high", "APSP (share of answers meeting the MES)"), ("latency_s", "latency_low", "latency_high", "latency (s)"))
    ):
        axis = axes[column]
        for index, policy in enumerate(policies):
            rows = summary[summary["policy"] == policy].set_index("scenario").reindex(scenarios)
            x = np.arange(len(scenarios)) + (index - (len(policies) - 1) / 2) * width
            errors = np.vstack([rows[value] - rows[low], rows[high] - rows[value]]).clip(min=0)
            bars = axis.bar(x, rows[value], width, yerr=np.nan_to_num(errors), capsize=3, label=policy, color=colours(index))
            axis.bar_label(bars, labels=[f"n={n:.0f}" if n == n else "" for n in rows["ratings"]], fontsize=7, padding=2)
        mes = summary.drop_duplicates("scenario").set_index("scenario")["mes"]
        axis.set_xticks(np.arange(len(scenarios)), [f"{s} (MES {mes[s]:g})" for s in scenarios])
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
        if value == "apsp":
            axis.set_ylim(0, 1.12)
    axes[0].legend(fontsize=8, loc="upper left", ncols=2)
    figure.suptitle(f"Online study: APSP and latency per policy ({CONFIDENCE:.0%} confidence intervals)")
    figure.tight_layout()
    save_figure(figure, path)


def _markdown(database: Path, data: StudyData, summary: pd.DataFrame, participants: pd.DataFrame, too_few: pd.DataFrame, min_ratings: int) -> str:
    c = data.counts
    scales = " and ".join(sorted({"1-10 scores" if s == "score" else "yes/no answers" for s in data.ratings["scale"]}))
    lines = [
        "# Online study report",
        "",
        f"Database `{database}`: {c['participants']} participants, {c['sessions']} sessions, {c['questions']} questions asked, "
        f"{c['answered']} answered, {c['ratings']} answers rated ({scales}).",
        "",
        "APSP is the share of rated answers that met the scenario's MES (a rating of at least the MES, or \"yes\"), with its "
        f"{CONFIDENCE:.0%} Wilson interval; latency is the mean time from the question reaching the gateway to the answer's "
        f"last word, with its {CONFIDENCE:.0%} t interval; edge share is the share of rated answers the edge model gave.",
        "",
    ]
    for scenario, rows in summary.groupby("scenario", sort=False):
        lines += [f"## Scenario {scenario} (MES {rows['mes'].iloc[0]:g})", "",
                  "| policy | ratings | participants | APSP [95 % CI] | latency s [95 % CI] | edge share |", "|---|---:|---:|---|---|---:|"]
        for row in rows.itertuples(index=False):
            flag = " (too few)" if row.ratings < min_ratings else ""
            lines.append(
                f"| {row.policy}{flag} | {row.ratings} | {row.participants} | {row.apsp:.3f} [{_num(row.apsp_low)}, {_num(row.apsp_high)}] "
                f"| {row.latency_s:.2f} [{_num(row.latency_low, 2)}, {_num(row.latency_high, 2)}] | {row.edge_share:.2f} |"
            )
        lines += ["", *_reading(rows, min_ratings), ""]
    if not too_few.empty:
        cells = ", ".join(f"{r.policy} in {r.scenario} ({r.ratings})" for r in too_few.itertuples(index=False))
        lines += [f"**Too few ratings for a conclusion** (fewer than {min_ratings} per policy and scenario): {cells}. "
                  "Collect more ratings before comparing these policies.", ""]
    lines += ["## Per participant", "", "| participant | scenario | policy | ratings | APSP | latency s |", "|---|---|---|---:|---:|---:|"]
    for row in participants.itertuples(index=False):
        lines.append(f"| {row.participant} | {row.scenario} | {row.policy} | {row.ratings} | {row.apsp:.3f} | {row.latency_s:.2f} |")
    lines += ["", f"![APSP and latency per policy]({FIGURE_PNG})", "",
              f"Tables: `{SUMMARY_CSV}` (per scenario and policy), `{PARTICIPANTS_CSV}` (per participant), `{RATINGS_CSV}` (every rating).", ""]
    return "\n".join(lines)


def _reading(rows: pd.DataFrame, min_ratings: int) -> list[str]:
    """One sentence on the scenario's best APSP and whether its interval separates it from the runner-up."""
    enough = rows[rows["ratings"] >= min_ratings].sort_values("apsp", ascending=False)
    if len(enough) < 2:
        return [f"Fewer than two policies have {min_ratings} ratings here: no comparison yet."]
    best, second = enough.iloc[0], enough.iloc[1]
    separated = best["apsp_low"] > second["apsp_high"]
    fastest = enough.sort_values("latency_s").iloc[0]
    return [
        f"Highest APSP: {best['policy']} ({best['apsp']:.3f}), "
        + ("its interval lies above that of " if separated else "but its interval overlaps that of ")
        + f"{second['policy']} ({second['apsp']:.3f}){'' if separated else ': not a conclusive difference'}. "
        f"Lowest mean latency: {fastest['policy']} ({fastest['latency_s']:.2f} s)."
    ]


def _num(value: float, digits: int = 3) -> str:
    return "–" if value != value else f"{value:.{digits}f}"
