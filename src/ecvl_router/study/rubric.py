"""The rating help participants see: the one-line score descriptions of the judge's 1-10 rubric (Appendix A.2)."""

from __future__ import annotations

import re

from ecvl_router.collect.judge import load_template

_GUIDELINE = re.compile(r"^\s*-\s*(\d+)\s*:\s*(.+?)\s*$", re.MULTILINE)

YES_NO_QUESTION = "Does this answer meet your expectation?"


def rubric_lines() -> dict[int, str]:
    """Score -> its description, read from the judge prompt shipped with the package."""
    lines = {int(score): text for score, text in _GUIDELINE.findall(load_template())}
    if sorted(lines) != list(range(1, 11)):
        raise ValueError(f"the judge template's scoring guidelines cover scores {sorted(lines)}, not 1-10")
    return lines
