r"""The latent model that turns a rendered demo item into simulated judge scores, latencies and responses.

Nothing here is a real VLM: the pool is a set of simulated models that differ only by their parameter
count ``P`` (billions), with the sizes of the paper's roster (Table 5). For item ``i`` of family ``f`` and
model ``m``:

Item difficulty, shared by all models and computed from what is visible in the item::

    d_i = FAMILY_BASE[f] + W_PERCEPTION * p_i + W_REASONING * r_i
    r_i = (steps_i - 1) + max(0, question_words_i - 8) / 20

``p_i`` is the family's visual-hardness sum (clutter, small objects or fonts, low contrast, noise, blur,
missing value labels; see ``families``) and ``r_i`` the reasoning load.

Size deficit, a power law (1 at 1B, 2 at 0.25B, 0.16 at 38B)::

    delta_m = P_m ** -SIZE_EXPONENT

Quality margin, with ``u_i ~ N(0, SIGMA_ITEM)`` (hardness no visible property explains, shared by all
models) and ``e_im ~ N(0, SIGMA_NOISE)`` (this model's luck on this item, and the judge's)::

    q_im = -d_i - delta_m * (SENS_PERCEPTION * p_i**2 + SENS_REASONING * r_i**2) + u_i + e_im

The size penalty grows with the square of the visible hardness: on a clean, one-step item all models are
alike; on a small, blurred or multi-step one the small models fall behind. That is why the edge model's
success can be predicted from the item, as routing requires. Judge score::

    score_im = clip(round(SCORE_CENTER + SCORE_SCALE * q_im), 1, 10)

so score >= 6 exactly when ``q_im >= 0``. The response text follows the score (``responses``).

Latency, log-normal around a median that grows with model size, image size and answer length::

    speed_m    = LATENCY_BASE_S + LATENCY_SIZE_S * P_m ** LATENCY_SIZE_EXPONENT
    latency_im = speed_m * (SHARE_FIXED + SHARE_VISION * pixels_i / 448**2 + SHARE_TOKEN * tokens_im)
                 * exp(SIGMA_LATENCY * z_im),   z_im ~ N(0, 1)

``speed_m`` is the median latency of a reference query (a 448×448 image and 10 output tokens);
``tokens_im`` is the token count of the response text.

Calibration, done once (the constants below are fixed, and nothing here knows of routers): the design
constants were set by hand: weights and sensitivities, noise levels (the hidden item hardness and the
per-response noise are about 1.4 and 0.85 score points), the size exponent (0.5 reproduces the paper's
shape: a large gain from 1B to 8B, a small one from 8B to 38B), the score scale and the latency shares.
The six image families' FAMILY_BASE values were then fitted by least squares on 3,000 items (seed 0),
using the expected share of scores >= 6 under the noise, to: the paper's solve rates at MES 6 (Table 1:
0.456 for 1B, 0.529 for 8B, 0.549 for 38B), its mean score of 5.58, an overall share of scores >= 6 of
0.512 (the median of 6 needs more than half; the paper's three rates average 0.511 while its pool also
holds weaker models, so this costs one or two points of solve rate), and per-family offsets that follow the paper's difficulty
ranking (ChartQA easiest, WildVision easy, GQA and VizWiz medium, MMMU-Pro and MMStar hardest). The
text-only family ``text_questions``, added later and mirroring no benchmark of the paper, got its base
alone, the others kept: the value at which its expected share of scores >= 6 over the pool equals that
overall target of 0.512 (a middling family, between table reasoning and text reading), so that adding
it leaves the calibration in place.
LATENCY_BASE_S, LATENCY_SIZE_S and SIGMA_LATENCY were fitted to the median latencies of the smallest and
largest model (0.62 s and 2.47 s) and the overall P99 (5.45 s) of Appendix A.4.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecvl_router.data.demo.responses import compose_response, count_tokens
from ecvl_router.data.demo.task import Task
from ecvl_router.data.demo.truth import SimulationTruth

# Design constants (set by hand).
W_PERCEPTION = 0.45
W_REASONING = 0.35
SENS_PERCEPTION = 0.08
SENS_REASONING = 0.05
SIZE_EXPONENT = 0.5
SIGMA_ITEM = 0.85
SIGMA_NOISE = 0.5
SCORE_CENTER = 5.5
SCORE_SCALE = 1.7
SCORE_MIN, SCORE_MAX = 1, 10
SHARE_FIXED, SHARE_VISION, SHARE_TOKEN = 0.45, 0.25, 0.03
REFERENCE_PIXELS = 448 * 448
LATENCY_SIZE_EXPONENT = 0.7

# Fitted constants (see the module docstring).
FAMILY_BASE = {
    "chart_reading": -2.113,
    "scene_counting": -1.933,
    "open_description": -1.307,
    "text_reading": -1.060,
    "table_reasoning": -0.785,
    "fine_attributes": 0.269,
    "text_questions": -0.944,
}
LATENCY_BASE_S = 0.672
LATENCY_SIZE_S = 0.171
SIGMA_LATENCY = 0.399


@dataclass(frozen=True)
class DemoModel:
    """A simulated VLM, characterised only by its parameter count (billions)."""

    name: str
    params_b: float

    @property
    def size_label(self) -> str:
        """The parameter size as people write it, e.g. ``0.25B`` or ``38B``."""
        return f"{self.params_b:g}B"

    @property
    def deficit(self) -> float:
        """``P ** -SIZE_EXPONENT``: 1 at 1B, larger for smaller models."""
        return self.params_b**-SIZE_EXPONENT

    @property
    def verbosity(self) -> float:
        """Probability of justifying a correct answer; larger models explain more."""
        return min(0.9, 0.15 + 0.1 * math.log2(self.params_b / 0.25))

    @property
    def speed_s(self) -> float:
        """Median latency of a reference query (448×448 image, 10 output tokens)."""
        return LATENCY_BASE_S + LATENCY_SIZE_S * self.params_b**LATENCY_SIZE_EXPONENT


DEMO_MODELS: tuple[DemoModel, ...] = tuple(
    DemoModel(f"sim-vlm-{size}b", size) for size in (0.25, 1, 2, 5.6, 7, 8, 27, 38)
)
"""The simulated pool, ordered from the smallest edge model to the largest cloud model."""

_BY_SIZE = {m.params_b: m.name for m in DEMO_MODELS}
DEMO_PAIRS: tuple[tuple[str, str], ...] = (
    (_BY_SIZE[38], _BY_SIZE[1]),
    (_BY_SIZE[8], _BY_SIZE[1]),
    (_BY_SIZE[38], _BY_SIZE[8]),
)
"""Default (cloud, edge) pairs, mirroring the paper's Table 1: large/small, mid/small, large/mid."""


@dataclass(frozen=True)
class SimulatedResponse:
    """One model's simulated answer to one item."""

    response: str
    score: int
    latency_s: float
    output_tokens: int


def reasoning_load(task: Task) -> float:
    """Steps beyond the first plus a penalty for long questions (visible in the text)."""
    words = len(task.question.split())
    return (task.steps - 1) + max(0, words - 8) / 20


def item_difficulty(task: Task) -> float:
    """``d_i``: the difficulty every model faces on this item."""
    return FAMILY_BASE[task.source] + W_PERCEPTION * task.perception + W_REASONING * reasoning_load(task)


def draw_item_hardness(rng: np.random.Generator) -> float:
    """``u_i``: hardness of the item that no visible property explains."""
    return float(rng.normal(0.0, SIGMA_ITEM))


def visible_margin(task: Task, model: DemoModel) -> float:
    """``mu_im = -d_i - delta_m * (SENS_PERCEPTION * p_i**2 + SENS_REASONING * r_i**2)``: the quality margin
    that what is visible in the item determines; ``q_im`` adds the hidden hardness and the noise to it."""
    size_penalty = SENS_PERCEPTION * task.perception**2 + SENS_REASONING * reasoning_load(task) ** 2
    return -item_difficulty(task) - model.deficit * size_penalty


def simulate_response(task: Task, model: DemoModel, hidden_hardness: float, rng: np.random.Generator) -> SimulatedResponse:
    """Score, latency and text of ``model`` on ``task``; ``rng`` must be this (item, model)'s own stream."""
    margin = visible_margin(task, model) + hidden_hardness + rng.normal(0.0, SIGMA_NOISE)
    score = int(np.clip(np.rint(SCORE_CENTER + SCORE_SCALE * margin), SCORE_MIN, SCORE_MAX))
    jitter = rng.standard_normal()
    text = compose_response(task, score, model.verbosity, rng)
    tokens = count_tokens(text)
    pixels = task.image.width * task.image.height if task.image is not None else 0
    work = SHARE_FIXED + SHARE_VISION * pixels / REFERENCE_PIXELS + SHARE_TOKEN * tokens
    latency = model.speed_s * work * math.exp(SIGMA_LATENCY * jitter)
    return SimulatedResponse(text, score, round(latency, 3), tokens)


def simulation_truth(margins: pd.DataFrame) -> SimulationTruth:
    """The ground truth of this latent model for visible margins ``margins`` (index item_id, one column per model)."""
    return SimulationTruth(
        margins=margins, sigma_item=SIGMA_ITEM, sigma_noise=SIGMA_NOISE, score_center=SCORE_CENTER,
        score_scale=SCORE_SCALE, score_min=SCORE_MIN, score_max=SCORE_MAX,
    )
