"""Edge-competence labels: the paper's MES rule (Eq. 2) and the win-hard / win-soft(k) alternatives (5.5)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

LabelRule = Literal["mes", "win-hard", "win-soft"]
LABEL_RULES: tuple[str, ...] = ("mes", "win-hard", "win-soft")


def competence_labels(
    score_edge: ArrayLike,
    score_cloud: ArrayLike,
    *,
    mes: float,
    rule: LabelRule = "mes",
    k: float = 1,
) -> np.ndarray:
    """1 where the edge model is competent for the query, else 0 (int8, one per query).

    - ``mes``: Score_edge >= min(Score_cloud, MES) (Case A) or Score_cloud < MES (Case B).
    - ``win-hard``: Score_edge >= Score_cloud.
    - ``win-soft``: Score_edge + k >= Score_cloud.
    ``mes`` is only used by the MES rule.
    """
    edge = np.asarray(score_edge, dtype=np.float64)
    cloud = np.asarray(score_cloud, dtype=np.float64)
    if edge.shape != cloud.shape:
        raise ValueError(f"score_edge has shape {edge.shape} but score_cloud has shape {cloud.shape}")
    if rule == "mes":
        competent = (edge >= np.minimum(cloud, mes)) | (cloud < mes)
    elif rule == "win-hard":
        competent = edge >= cloud
    elif rule == "win-soft":
        competent = edge + k >= cloud
    else:
        raise ValueError(f"unknown label rule {rule!r}; expected one of {', '.join(LABEL_RULES)}")
    return competent.astype(np.int8)


def describe_rule(rule: LabelRule, *, mes: float, k: float = 1) -> str:
    """A short human-readable name of a label rule with its parameter, for reports and manifests."""
    if rule == "mes":
        return f"MES rule (MES {mes:g})"
    if rule == "win-soft":
        return f"win-soft({k:g})"
    return rule
