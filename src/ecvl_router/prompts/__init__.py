"""Prompt templates: the LLM judge's 1-10 rubric (Appendix A.2), used by the judge and shown to study participants."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from ecvl_router.config import ConfigError

PLACEHOLDERS = ("question", "reference", "prediction")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
NO_REFERENCE = "(no reference answer)"


def load_template(path: Path | None = None) -> str:
    """A judge prompt template (the shipped 1-10 rubric by default); it must contain every placeholder."""
    if path is None:
        text = files("ecvl_router.prompts").joinpath("judge_1_10.txt").read_text(encoding="utf-8")
    else:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: judge template not found")
        text = Path(path).read_text(encoding="utf-8")
    missing = [name for name in PLACEHOLDERS if "{" + name + "}" not in text]
    if missing:
        raise ConfigError(f"{path or 'judge template'}: missing placeholder(s) {', '.join('{' + m + '}' for m in missing)}")
    return text.rstrip("\n")


def render_prompt(template: str, *, question: str, reference: str | None, prediction: str) -> str:
    """The template with its placeholders filled in one pass (braces inside the values stay as they are)."""
    values = {"question": question, "reference": reference if reference is not None else NO_REFERENCE, "prediction": prediction}
    return _PLACEHOLDER.sub(lambda match: values[match[1]], template)
