"""`ecvl-router study-report`: statistics checked against closed forms and scipy, files, messages."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from ecvl_router.cli import app as cli_app
from ecvl_router.study.report import StudyReportError, mean_interval, wilson_interval, write_study_report
from ecvl_router.study.store import Answer, StudyStore

POLICIES = ["ecvl", "all-large"]


def wilson_closed_form(k: int, n: int, z: float = stats.norm.ppf(0.975)) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(7, 10), (0, 12), (12, 12), (33, 50), (1, 3)])
def test_wilson_interval_matches_its_closed_form(k: int, n: int) -> None:
    assert wilson_interval(k, n) == pytest.approx(wilson_closed_form(k, n), abs=1e-12)


def test_wilson_interval_of_a_textbook_case() -> None:
    assert wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=5e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval_is_students_t_interval() -> None:
    values = np.array([1.2, 2.5, 0.8, 3.1, 1.9, 2.2])
    mean, low, high = mean_interval(values)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    assert mean == pytest.approx(values.mean()) and (low, high) == pytest.approx((mean - half, mean + half))
    assert mean_interval([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)
    single = mean_interval([2.0])
    assert single[0] == 2.0 and math.isnan(single[1]) and math.isnan(single[2])


# ---------------------------------------------------------------------- a study database with known ratings
RATINGS = {
    # (participant, scenario, mes, policy): [(score, latency_ms, route)]
    ("P1", "quality", 7, "ecvl"): [(8, 1000, "edge"), (6, 3000, "cloud"), (9, 2000, "cloud"), (7, 1500, "edge")],
    ("P2", "quality", 7, "all-large"): [(9, 4000, "cloud"), (10, 5000, "cloud"), (5, 4500, "cloud")],
    ("P1", "speed", 5, "all-large"): [(5, 4200, "cloud"), (4, 3800, "cloud")],
    ("P3", "speed", 5, "ecvl"): [(6, 900, "edge"), (3, 1100, "edge"), (5, 1000, "edge"), (8, 3500, "cloud")],
}


def build_database(path: Path, ratings: dict = RATINGS, scale: str = "score") -> Path:
    store = StudyStore(path)
    store.bind(POLICIES, seed=0)
    with sqlite3.connect(path) as connection:  # sessions with chosen policies, as if the assignment had given them
        for index, (participant, scenario, mes, policy) in enumerate(ratings):
            connection.execute("INSERT OR IGNORE INTO participants VALUES (?, '2025-01-01T00:00:00')", (participant,))
            connection.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (f"s{index}", participant, scenario, mes, policy, index, f"2025-01-01T00:00:0{index}"))
    for index, ((participant, scenario, mes, policy), rows) in enumerate(ratings.items()):
        for score, latency_ms, route in rows:
            query = store.add_query(f"s{index}", "a question", None)
            store.finish_query(query, Answer("answered", route=route, model=f"{route}-vlm", latency_ms=latency_ms))
            if scale == "score":
                store.rate(query, score=score)
            else:
                store.rate(query, meets=score >= mes)
    store.add_query("s0", "never answered", None)
    return path


def test_report_statistics_and_files(tmp_path: Path) -> None:
    report = write_study_report(build_database(tmp_path / "study.db"), tmp_path / "report", min_ratings=4)
    summary = report.summary.set_index(["scenario", "policy"])
    assert list(report.summary["scenario"]) == ["quality", "quality", "speed", "speed"]
    assert list(report.summary["policy"]) == ["ecvl", "all-large", "ecvl", "all-large"]  # the study's policy order
    quality = summary.loc[("quality", "ecvl")]
    assert quality["ratings"] == 4 and quality["satisfied"] == 3 and quality["apsp"] == 0.75  # 8, 9, 7 >= MES 7
    assert (quality["apsp_low"], quality["apsp_high"]) == pytest.approx(wilson_closed_form(3, 4))
    latencies = np.array([1.0, 3.0, 2.0, 1.5])
    low, high = stats.t.interval(0.95, 3, loc=latencies.mean(), scale=stats.sem(latencies))
    assert (quality["latency_s"], quality["latency_low"], quality["latency_high"]) == pytest.approx((1.875, low, high))
    assert quality["edge_share"] == 0.5
    speed = summary.loc[("speed", "ecvl")]
    assert speed["satisfied"] == 3 and speed["edge_share"] == 0.75  # 6, 5, 8 >= MES 5
    assert summary.loc[("speed", "all-large"), "apsp"] == 0.5
    assert sorted(map(tuple, report.too_few[["scenario", "policy"]].to_numpy())) == [("quality", "all-large"), ("speed", "all-large")]

    participants = report.participants.set_index(["participant", "scenario", "policy"])
    assert participants.loc[("P1", "quality", "ecvl"), "ratings"] == 4 and participants.loc[("P1", "speed", "all-large"), "apsp"] == 0.5
    assert len(report.participants) == 4

    files = report.files
    assert pd.read_csv(files["summary"]).shape[0] == 4 and pd.read_csv(files["ratings"]).shape[0] == 13
    assert files["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = files["markdown"].read_text()
    assert "13 answers rated" in markdown and "14 questions asked" in markdown
    assert "| ecvl | 4 | 1 | 0.750 [" in markdown and "| all-large (too few) | 3 |" in markdown
    assert "Too few ratings for a conclusion" in markdown and "all-large in quality (3)" in markdown


def test_yes_no_ratings_count_yes_as_satisfied(tmp_path: Path) -> None:
    report = write_study_report(build_database(tmp_path / "study.db", scale="yes_no"), tmp_path / "report", min_ratings=1)
    summary = report.summary.set_index(["scenario", "policy"])
    assert summary.loc[("quality", "ecvl"), "satisfied"] == 3 and summary.loc[("speed", "all-large"), "apsp"] == 0.5
    assert report.too_few.empty and "Too few ratings" not in report.files["markdown"].read_text()


def test_reports_on_unusable_databases_say_why(tmp_path: Path) -> None:
    with pytest.raises(StudyReportError, match="no such study database"):
        write_study_report(tmp_path / "missing.db", tmp_path / "out")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(StudyReportError, match="not a study database"):
        write_study_report(other, tmp_path / "out")
    empty = tmp_path / "empty.db"
    StudyStore(empty).bind(POLICIES, seed=0)
    with pytest.raises(StudyReportError, match="no rated answers yet"):
        write_study_report(empty, tmp_path / "out")


def test_cli_prints_the_table_and_warns_about_too_few_ratings(tmp_path: Path) -> None:
    database = build_database(tmp_path / "study.db")
    result = CliRunner().invoke(cli_app, ["study-report", str(database), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "too few ratings for a conclusion" in result.output and "study_report.md" in result.output
    assert (tmp_path / "report" / "study_figure.png").is_file()
    empty = tmp_path / "empty.db"
    StudyStore(empty).bind(POLICIES, seed=0)
    failed = CliRunner().invoke(cli_app, ["study-report", str(empty), "--out", str(tmp_path / "r2")])
    assert failed.exit_code != 0 and "no rated answers yet" in failed.output
