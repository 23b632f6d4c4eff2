"""Plausible response texts for a simulated judge score, and their token counts."""

from __future__ import annotations

import re

import numpy as np

from ecvl_router.data.demo.task import Task

_TOKEN = re.compile(r"\w+|[^\w\s]")

_CORRECT = ("{a}", "{a}.", "The answer is {a}.", "It is {a}.")
_UNSURE_CORRECT = ("I think it is {a}.", "Probably {a}.", "{a}, I believe.")
_NEAR = ("It looks like {a}, but I am not completely sure.", "Maybe {a}?", "I think it is {a}.")
_WRONG = ("{a}", "The answer is {a}.", "It seems to be {a}.")
_UNDECIDED_IMAGE = ("It is hard to tell from the image.", "I cannot make this out from the image.")
_UNDECIDED_TEXT = ("I am not sure how to solve this.", "I cannot work this out.")
_DESCRIPTION_DETAIL = (
    "The colours are simple and flat, like an illustration.",
    "The scene looks calm, with nothing unusual happening.",
    "The shapes are drawn in a plain, cartoon-like style.",
)


def count_tokens(text: str) -> int:
    """Approximate token count: words and punctuation marks (at least 1)."""
    return max(1, len(_TOKEN.findall(text)))


def _one(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def compose_response(task: Task, score: int, verbosity: float, rng: np.random.Generator) -> str:
    """The text a model whose answer the judge scored ``score`` (1–10) plausibly gave.

    8–10: the reference answer, with its justification (for a description: one more detail) at probability
    ``verbosity``; 6–7: the reference answer, hedged; 4–5: a near miss, or no decision where the question
    has no near miss; 1–3: a wrong answer, or (rarely) a refusal. So a score reaches MES 6 exactly when
    the answer is right.
    """
    undecided = _UNDECIDED_IMAGE if task.image is not None else _UNDECIDED_TEXT
    if task.long_answer:
        if score >= 8 and rng.random() < verbosity:
            return f"{task.reference} {_one(_DESCRIPTION_DETAIL, rng)}"
        if score >= 6:
            return task.reference
        if score >= 4:
            return task.near_miss or _one(undecided, rng)
        return _one(task.wrong, rng)
    if score >= 8:
        text = _one(_CORRECT, rng).format(a=task.reference)
        if task.explanation and rng.random() < verbosity:
            text = f"{text.rstrip('.')}. {task.explanation}"
        return text
    if score >= 6:
        return _one(_UNSURE_CORRECT, rng).format(a=task.reference)
    if score >= 4:
        return _one(_NEAR, rng).format(a=task.near_miss) if task.near_miss else _one(undecided, rng)
    if rng.random() < 0.15:
        return _one(undecided, rng)
    return _one(_WRONG, rng).format(a=_one(task.wrong, rng))
