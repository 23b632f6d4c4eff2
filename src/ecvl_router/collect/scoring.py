"""Reading the judge's score out of free text.

The rubric asks for the score alone on the first line and the explanation after it; judges also answer
"Score: 7", "7/10", "**7**", "Rating: [[8.5]]", or put the number after some prose. The first line is read
first, then the whole text. Ranges ("7-8"), other scales ("85/100") and numbers outside the scale are
reported as problems, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCALE = rf"(?:\s*(?:/|out\s+of)\s*(?P<d>{_NUMBER}))?"
_LABELLED = re.compile(
    rf"\b(?:overall\s+|final\s+|total\s+)?(?:score|rating|grade|mark)\b\s*(?:is|of|=|:|-|–)?\s*(?P<n>{_NUMBER}){_SCALE}",
    re.IGNORECASE,
)
_FRACTION = re.compile(rf"(?P<n>{_NUMBER})\s*(?:/|out\s+of)\s*(?P<d>{_NUMBER})", re.IGNORECASE)
_BARE = re.compile(rf"^\s*(?P<n>{_NUMBER})\s*[.!]?\s*$")
_LEADING = re.compile(rf"^\s*(?P<n>{_NUMBER})\s*[-–:;,.)](?:\s|$)")
_PHRASE = re.compile(
    rf"\b(?:give|gave|giving|rate|rated|rating|assign|assigned|award|awarded|scored?|deserves?|merits?|say)\b"
    rf"[^.\d\n]{{0,40}}?(?P<n>{_NUMBER}){_SCALE}",
    re.IGNORECASE,
)
_RANGE_AFTER = re.compile(rf"^\s*(?:-|–|to)\s*{_NUMBER}")
_ANY_NUMBER = re.compile(rf"(?P<n>{_NUMBER})")
_MARKUP = re.compile(r"[*_#`>\[\]()]")


@dataclass(frozen=True)
class ParsedScore:
    """A score, or the problem (``kind``: ``unparseable`` or ``out_of_range``) that kept one from being read."""

    score: float | None
    rationale: str | None
    kind: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


def _clean(line: str) -> str:
    return _MARKUP.sub(" ", line).strip()


def _find(text: str, patterns: tuple[re.Pattern[str], ...]) -> re.Match[str] | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match
    return None


def _bare_line(text: str) -> re.Match[str] | None:
    return next((m for m in map(_BARE.match, text.splitlines()) if m), None)


def _single_number(line: str) -> re.Match[str] | None:
    numbers = list(_ANY_NUMBER.finditer(line))
    return numbers[0] if len(numbers) == 1 else None


def _judge_match(match: re.Match[str], low: float, high: float, rationale: str | None) -> ParsedScore:
    if _RANGE_AFTER.match(match.string[match.end("n") :]):
        return ParsedScore(None, rationale, "unparseable", f"a range, not one score: {match.string.strip()[:60]!r}")
    value = float(match["n"])
    scale = match.groupdict().get("d")
    if scale is not None and float(scale) != high:
        return ParsedScore(None, rationale, "out_of_range", f"score on another scale: {match.group(0).strip()!r}")
    if not low <= value <= high:
        return ParsedScore(None, rationale, "out_of_range", f"score {value:g} is outside [{low:g}, {high:g}]")
    return ParsedScore(int(value) if value.is_integer() else value, rationale)


def parse_score(output: str, low: float = 1, high: float = 10) -> ParsedScore:
    """The score in a judge's ``output`` on the scale [``low``, ``high``], with the rationale around it."""
    text = output.strip()
    if not text:
        return ParsedScore(None, None, "unparseable", "empty output")
    lines = text.splitlines()
    first = _clean(lines[0])
    match = _find(first, (_LABELLED, _FRACTION, _BARE, _LEADING, _PHRASE))
    if match is None:
        cleaned = "\n".join(_clean(line) for line in lines)
        whole = _find(cleaned, (_LABELLED, _FRACTION, _PHRASE)) or _bare_line(cleaned)
        if whole is not None:
            return _judge_match(whole, low, high, text)
        match = _single_number(first)
        if match is None:
            return ParsedScore(None, text, "unparseable", "no score found")
    if match.start() > 0:  # the score sits inside prose: keep all of it
        return _judge_match(match, low, high, text)
    after = (first[match.end() :].strip(" -–:;,."), "\n".join(lines[1:]).strip())
    return _judge_match(match, low, high, "\n".join(part for part in after if part) or None)
