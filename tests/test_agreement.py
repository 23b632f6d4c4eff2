"""Judge-human agreement (Appendix A.3) checked against scipy on known data."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.collect.agreement import AgreementError, compute_agreement, read_human_ratings
from tests.conftest import write_tiny_rsd


def synthetic(seed: int = 3, responses: int = 60, raters: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1, 10, responses)
    judge = pd.DataFrame({"item_id": [f"i{k // 2}" for k in range(responses)], "model": ["a", "b"] * (responses // 2), "score": np.clip(np.round(truth + rng.normal(0.3, 0.8, responses)), 1, 10)})
    rows = []
    for r in range(raters):
        noisy = np.clip(np.round(truth + rng.normal(0, 1.0 + 0.2 * r, responses)), 1, 10)
        rows += [(judge.item_id[k], judge.model[k], f"Expert{r + 1}", float(noisy[k])) for k in range(responses) if not (r == 3 and k % 5 == 0)]
    return judge, pd.DataFrame(rows, columns=["item_id", "model", "rater", "score"])


def test_figures_match_scipy() -> None:
    judge, human = synthetic()
    report, matched = compute_agreement(judge, human)
    mean = human.groupby(["item_id", "model"]).score.mean()
    expected = judge.set_index(["item_id", "model"]).join(mean.rename("human"))
    x, y = expected["score"].to_numpy(), expected["human"].to_numpy()
    assert report.n_responses == 60 and report.n_raters == 4 and report.n_ratings == len(human)
    assert report.pearson_r == pytest.approx(stats.pearsonr(x, y).statistic)
    assert report.pearson_p == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert report.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)
    assert report.spearman_p == pytest.approx(stats.spearmanr(x, y).pvalue)
    t = stats.ttest_rel(y, x)
    assert (report.t_statistic, report.t_p_value) == (pytest.approx(t.statistic), pytest.approx(t.pvalue))
    assert report.bias_human_minus_judge == pytest.approx(np.mean(y - x))
    assert report.within_1 == pytest.approx(np.mean(np.abs(y - x) <= 1))
    assert report.within_2 == pytest.approx(np.mean(np.abs(y - x) <= 2))
    wide = human.pivot_table(index=["item_id", "model"], columns="rater", values="score")
    pairwise = [stats.pearsonr(*wide[[a, b]].dropna().to_numpy().T).statistic for a, b in itertools.combinations(wide.columns, 2)]
    assert report.mean_inter_rater_r == pytest.approx(np.mean(pairwise))
    for rater, rows in human.groupby("rater"):
        joined = rows.merge(judge, on=["item_id", "model"], suffixes=("_human", "_judge"))
        assert report.per_rater_r[rater] == pytest.approx(stats.pearsonr(joined.score_judge, joined.score_human).statistic)
    assert report.per_rater_n == {"Expert1": 60, "Expert2": 60, "Expert3": 60, "Expert4": 48}
    assert len(matched) == 60 and report.unmatched_ratings == 0


def test_hand_computed_example() -> None:
    judge = pd.DataFrame({"item_id": ["1", "2", "3", "4"], "model": "m", "score": [2, 5, 8, 9]})
    human = pd.DataFrame(
        [("1", "m", "A", 3), ("1", "m", "B", 3), ("2", "m", "A", 4), ("2", "m", "B", 6), ("3", "m", "A", 6), ("4", "m", "A", 9), ("9", "m", "A", 1)],
        columns=["item_id", "model", "rater", "score"],
    )
    report, matched = compute_agreement(judge, human)
    assert list(matched["human"]) == [3, 5, 6, 9]
    assert report.within_1 == 0.75 and report.within_2 == 1.0
    assert report.bias_human_minus_judge == pytest.approx(-0.25)
    assert report.unmatched_ratings == 1 and report.n_ratings == 6
    assert math.isnan(report.per_rater_r["B"])  # two ratings: no correlation
    assert report.as_dict()["per_rater_r"]["B"] is None


def test_undefined_correlations_are_none_in_json() -> None:
    judge = pd.DataFrame({"item_id": ["1", "2", "3"], "model": "m", "score": [5, 5, 5]})
    human = pd.DataFrame([(str(i), "m", "A", float(i)) for i in (1, 2, 3)], columns=["item_id", "model", "rater", "score"])
    report, _ = compute_agreement(judge, human)
    assert math.isnan(report.pearson_r) and report.as_dict()["pearson_r"] is None
    with pytest.raises(AgreementError, match="at least 3"):
        compute_agreement(judge.head(2), human)


@pytest.mark.parametrize(
    "content, message",
    [
        ("item_id,model,score\n1,m,5\n", "missing column(s) rater"),
        ("item_id,model,rater,score\n1,m,A,five\n", "ratings.csv:2: column 'score' is not a number"),
        ("item_id,model,rater,score\n1,m,A,5\n1,m,A,6\n", "ratings.csv:3: rater 'A' already scored (1, m) on line 2"),
        ("item_id,model,rater,score\n1,,A,5\n", "ratings.csv:2: column 'model' is empty"),
        ("item_id,model,rater,score\n", "no ratings"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(AgreementError) as caught:
        read_human_ratings(path)
    assert message in str(caught.value)


def test_agreement_command_writes_table_csv_json_and_plot(tmp_path: Path) -> None:
    rsd = write_tiny_rsd(tmp_path / "tiny")
    ratings = tmp_path / "ratings.csv"
    with open(ratings, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "model", "rater", "score", "comment"])
        for rater, shift in (("E1", 0), ("E2", 1)):
            for item, model, score in (("q1", "a", 8), ("q1", "b", 7), ("q2", "a", 3), ("q2", "b", 7), ("q3", "a", 9)):
                writer.writerow([item, model, rater, score - shift * (item == "q2"), "ok"])
            writer.writerow(["q9", "a", rater, 5, "not judged"])
    result = CliRunner().invoke(app, ["agreement", "--judge", str(rsd), "--human", str(ratings)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "pearson_r[E1]" in output and "mean_inter_rater_r" in output and "2 rating(s) left out" in output
    out = rsd / "agreement"
    figures = json.loads((out / "agreement.json").read_text())
    assert figures["n_responses"] == 5 and figures["n_raters"] == 2
    with open(out / "agreement.csv", newline="") as handle:
        rows = {row["statistic"]: row for row in csv.DictReader(handle)}
    assert float(rows["pearson_r"]["value"]) == pytest.approx(figures["pearson_r"], rel=1e-5)
    with Image.open(out / "agreement.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 300
    assert len(pd.read_csv(out / "agreement-pairs.csv")) == 5
