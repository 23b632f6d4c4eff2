"""The rating help participants see: the judge's 1-10 rubric (Appendix A.2), worded for the participant.

The judge compares an answer with a reference answer; a participant never sees one, so the descriptions
that mention it are replaced by ones that speak of the participant's own question and expectation.
"""

from __future__ import annotations

import re

from ecvl_router.prompts import load_template

_GUIDELINE = re.compile(r"^\s*-\s*(\d+)\s*:\s*(.+?)\s*$", re.MULTILINE)

YES_NO_QUESTION = "Does this answer meet your expectation?"
PARTICIPANT_WORDING = {
    9: "Answer is complete and what you expected, high accuracy, clear and complete expression",
    10: "Answer fully meets your expectation and also considers more aspects, more comprehensive, exceeds expectations",
}
"""The descriptions that differ from the judge's: those that refer to a reference answer."""


def rubric_lines() -> dict[int, str]:
    """Score -> its description for participants: the shipped judge prompt's, reworded where it mentions a reference."""
    lines = {int(score): text for score, text in _GUIDELINE.findall(load_template())}
    if sorted(lines) != list(range(1, 11)):
        raise ValueError(f"the judge template's scoring guidelines cover scores {sorted(lines)}, not 1-10")
    lines |= PARTICIPANT_WORDING
    unworded = [score for score, text in lines.items() if "reference" in text.lower()]
    if unworded:
        raise ValueError(f"the rubric for participants still mentions a reference answer at score(s) {unworded}")
    return lines
