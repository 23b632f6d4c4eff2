"""One rendered demo item and the visible hardness measures its family reports with it."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Task:
    """A benchmark item as rendered, with what the response simulator needs to know about it.

    ``perception`` is the item's visual hardness, a non-negative sum of the properties that make the image
    hard to read (small objects or fonts, clutter, low contrast, noise, blur; see each family). ``steps`` is
    the number of reasoning steps the question needs. ``near_miss`` is a partly right answer (a misread
    digit, an intermediate result, an incomplete description; None for yes/no-like questions, which have
    none) and ``wrong`` holds plausible wrong answers.
    """

    source: str
    question: str
    reference: str
    image: Image.Image | None
    image_format: str  # "PNG" or "JPEG"; ignored for text-only items
    perception: float
    steps: int
    near_miss: str | None
    wrong: tuple[str, ...]
    explanation: str
    long_answer: bool = False

    def __post_init__(self) -> None:
        if (
            self.perception < 0 or self.steps < 1 or not self.question or not self.wrong
            or self.reference in self.wrong or self.near_miss == self.reference
        ):
            raise ValueError(f"inconsistent {self.source} task: {self.question!r} -> {self.reference!r}")


def font_hardness(font_px: float) -> float:
    """0 for text of 16 px or more, rising to 1.5 for 7 px text."""
    return min(1.5, max(0.0, (16 - font_px) / 6))


def size_hardness(relative_size: float) -> float:
    """0 for objects of 7 % of the short side or more, rising to 1.5 for tiny ones."""
    return min(1.5, max(0.0, (0.07 - relative_size) / 0.03))


def contrast_hardness(contrast: float) -> float:
    """0 at full contrast, 1.5 at none."""
    return 1.5 * (1 - contrast)


def degradation_hardness(noise_sigma: float, blur_radius: float) -> float:
    """Pixel noise (per 20 grey levels) plus blur (per 1.2 px radius)."""
    return noise_sigma / 20 + blur_radius / 1.2
