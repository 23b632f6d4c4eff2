"""Reading scores out of judge outputs: a corpus of realistic answers, malformed ones included."""

from __future__ import annotations

import pytest

from ecvl_router.collect.scoring import parse_score

READABLE = [
    ("7", 7, None),
    ("7\nThe answer identifies the bar correctly but omits the unit.", 7, "The answer identifies the bar correctly but omits the unit."),
    ("Score: 7\nAccurate and concise.", 7, "Accurate and concise."),
    ("Score: 8/10\n\nThe response matches the reference answer.", 8, "The response matches the reference answer."),
    ("7/10 - accurate but brief", 7, "accurate but brief"),
    ("**7**\n\n**Explanation:** The model reads the chart correctly.", 7, "**Explanation:** The model reads the chart correctly."),
    ("**Score:** 9\n\nComplete and consistent with the reference.", 9, "Complete and consistent with the reference."),
    ("Rating: 8.5\nVery good, minor omissions.", 8.5, "Very good, minor omissions."),
    ("Rating: [[6]]", 6, None),
    ("[[4]]\nThe count is wrong (5 instead of 4).", 4, "The count is wrong (5 instead of 4)."),
    ("10\nExceeds the reference: it also explains the trend.", 10, "Exceeds the reference: it also explains the trend."),
    ("1\nThe model refuses to answer.", 1, "The model refuses to answer."),
    ("  6  \n\nPassing, with minor errors.", 6, "Passing, with minor errors."),
    ("Score: 3.\nMultiple major errors.", 3, "Multiple major errors."),
    ("5 - relevant but inaccurate", 5, "relevant but inaccurate"),
    ("### Score\n**8**/10\nAccurate and detailed.", 8, "*"),
    ("Overall score: 7 out of 10. Good logic.", 7, "Good logic"),
    ("I would give this response a 6 because it is basically correct but misses the unit.", 6, "*"),
    ("The answer is partially correct.\nIt misreads one label.\nFinal score: 5", 5, "*"),
    ("The chart shows 2019 revenue.\nThe model answered 2018.\nScore: 2", 2, "*"),
    ("Evaluation:\nThe model is right about the colour but wrong about the count.\n\n4", 4, "*"),
    ("The response deserves a 9 for completeness.", 9, "*"),
    ("Score - 8\nclear", 8, "clear"),
    ("score of 4 out of 10", 4, None),
]

PROBLEMS = [
    ("", "unparseable", "empty output"),
    ("   \n  ", "unparseable", "empty output"),
    ("N/A", "unparseable", "no score found"),
    ("I cannot evaluate this response without seeing the image.", "unparseable", "no score found"),
    ("Score: 7-8\nIt is between good and excellent.", "unparseable", "range"),
    ("Score: 6 to 7", "unparseable", "range"),
    ("Score: 0\nNo answer at all.", "out_of_range", "outside [1, 10]"),
    ("Score: 11\nBeyond perfect.", "out_of_range", "outside [1, 10]"),
    ("85/100\nStrong answer.", "out_of_range", "another scale"),
    ("Rating: 4/5", "out_of_range", "another scale"),
    ("-2", "out_of_range", "outside"),
]


@pytest.mark.parametrize("output, score, rationale", READABLE)
def test_readable_outputs(output: str, score: float, rationale: str | None) -> None:
    parsed = parse_score(output)
    assert parsed.ok, parsed.problem
    assert parsed.score == score
    if rationale == "*":  # the score sits inside prose: the whole text is the rationale
        assert parsed.rationale == output.strip()
    else:
        assert parsed.rationale == rationale


@pytest.mark.parametrize("output, kind, problem", PROBLEMS)
def test_problems_are_named_not_guessed(output: str, kind: str, problem: str) -> None:
    parsed = parse_score(output)
    assert not parsed.ok and parsed.score is None
    assert parsed.kind == kind and problem in parsed.problem


def test_other_scales() -> None:
    assert parse_score("85/100", low=0, high=100).score == 85
    assert parse_score("Score: 4\nfine", low=1, high=5).score == 4
    assert parse_score("Score: 6", low=1, high=5).kind == "out_of_range"


def test_integral_scores_are_integers() -> None:
    assert isinstance(parse_score("7.0").score, int)
    assert isinstance(parse_score("7.5").score, float)
