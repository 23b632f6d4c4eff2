"""A two-stage linear router that learns from every model's scores: the query's predicted score profile.

Stage one predicts the score of *every* model of the dataset, and the pair's gap d = edge score − cloud
score, from each branch of the query on its own (ridge regression on the branch's standardised columns,
one penalty per branch and target chosen by ``inner_folds``-fold cross-validation of the squared error),
so a noisy branch (1,280 image columns) is shrunk without shrinking the others. A dataset with M models
gives stage one M targets per query, each a noisy view of the same few properties of the query (how hard
it is, what it asks for); stage two combines the branches' (M + 1)-wide predicted profiles, which averages
much of that noise away before the pair's own, scarcer labels are fitted. Stage two, by ``head``:

- ``gap`` (default): a ridge regression of d on the profile ranks the queries (what the edge loses, or
  gains, against the cloud), and a logistic map of that ranking score per MES level gives P(edge competent).
  With ``lookup`` (on by default with this head) the ranking score is the sum of two standardised scores: the
  ridge's, and the mean gap of the training queries in the query's (source, last sentence) cell, the
  ``lookup`` baseline's table (:class:`~ecvl_router.routers.lookup.CellGaps`). The two rank the queries by
  different evidence, the embedded query and the wording's cell (measured on DynaMath in docs/evaluation.md).
  A live query is looked up by its last sentence alone unless it names its
  source (``X-ECVL-Source`` at the gateway);
- ``logistic``: ``linear``'s cross-validated logistic regression of the competence labels on the profile.

With ``endings`` (off by default: on DynaMath it did not help) stage two also reads the mean gap of the training queries whose question ends
in the same sentence (out of fold; the overall mean for a sentence not seen): on benchmarks whose
questions end in an instruction ("Answer with a floating-point number."), that sentence says what the
answer looks like, which a sentence embedding of the whole question blurs. It needs only the question
text, so live queries get it too.

Stage two is fitted on out-of-fold profiles (each held-out fold predicted by stage one fitted on the
others), so it learns how far predicted profiles are to be trusted, not the in-sample ones; the logistic
map of ``gap`` is fitted on out-of-fold ranking scores (and held-out cell gaps). Every inner fold keeps each of the features'
``groups`` (when known) on one side. Missing scores are filled with the model's mean score for stage one.
``predict_proba`` and ``competence`` give P(edge competent) for the pair the router was fitted for, at any
MES on the dataset's scale (one stage-two head per score level); other pairs need their own fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from ecvl_router.features.features import QueryFeatures
from ecvl_router.labels import LabelRule, competence_labels
from ecvl_router.routers.base import positive_int
from ecvl_router.routers.inner_cv import CrossValidatedRidge, inner_splits
from ecvl_router.routers.inputs import InputEncoder, check_features
from ecvl_router.routers.linear import LinearRouter
from ecvl_router.routers.lookup import CellGaps, CellKeys, EndingGaps, question_endings
from ecvl_router.routers.multi import ScoreTargets, score_levels
from ecvl_router.routers.threads import limited_threads

HEADS = ("gap", "logistic")
"""Stage twos of ``profile``: a ridge regression of the edge-minus-cloud gap, or a logistic regression of the labels."""


@dataclass
class ProfileModel:
    """The fitted stages: the profile predictor, the gap ranking (``gap`` head only) and one competence head per MES
    level (a constant where the labels were)."""

    scores: dict[str, CrossValidatedRidge]
    """Stage one per branch: every model's score and the gap, predicted from that branch alone."""
    endings: EndingGaps | None
    """With ``endings``: the training queries' mean gap per last sentence of the question, one more stage-two input."""
    gap: CrossValidatedRidge | None
    heads: dict[float, BaseEstimator | float]
    pair: dict[str, Any]
    lowest: float
    """Under the MES rule the lowest training score (every answer reaches an MES at or below it); else -inf."""
    cells: CellGaps | None = None
    """With ``lookup``: the training queries' mean gap per (source, last sentence) cell, added to the gap ranking."""
    blend: tuple[float, float, float, float] | None = None
    """With ``lookup``: the mean and standard deviation of the out-of-fold ranking scores, then of the held-out cell gaps."""

    def head_for(self, mes: float) -> BaseEstimator | float:
        """The head of the lowest level ≥ ``mes`` (the labels at ``mes`` equal that level's on this scale).

        An MES at or below the lowest score, or above every score, makes the edge always competent (its
        answer reaches the MES, or the cloud's never does).
        """
        levels = [level for level in self.heads if level >= mes]
        return self.heads[min(levels)] if levels and mes > self.lowest else 1.0

    def head_inputs(self, branches: dict[str, np.ndarray], X: QueryFeatures) -> np.ndarray:
        """What the heads read for the queries ``X`` (encoded: ``branches``): the predicted profiles side by side (and
        the looked-up gap of the question's last sentence), or the gap ranking score from them (blended with the
        cell's gap)."""
        profile = np.concatenate([ridge.predict(branches[name]) for name, ridge in self.scores.items()], axis=1)
        if self.endings is not None:
            profile = np.column_stack([profile, self.endings.predict(question_endings(X))])
        if self.gap is None:
            return profile
        ranking = self.gap.predict(profile)
        if self.cells is None or self.blend is None:
            return ranking
        return blended_ranking(ranking, self.cells.predict(CellKeys.of(X)), self.blend)


def blended_ranking(ranking: np.ndarray, cell_gaps: np.ndarray, blend: tuple[float, float, float, float]) -> np.ndarray:
    """The ridge's ranking scores (n, 1) plus the cells' gaps (n,), each standardised by ``blend``, as (n, 1)."""
    ranking_mean, ranking_std, cells_mean, cells_std = blend
    return (ranking - ranking_mean) / ranking_std + ((cell_gaps - cells_mean) / cells_std)[:, None]


def _held_out(folds: list[tuple[np.ndarray, np.ndarray]], n_rows: int,
              look_up: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Each row's value from ``look_up(fit_rows, held_rows)``: a table built on the other folds' rows, read at its own."""
    looked_up = np.zeros(n_rows)
    for fit_rows, held_rows in folds:
        looked_up[held_rows] = look_up(fit_rows, held_rows)
    return looked_up


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``values`` (1 for a constant)."""
    std = float(np.std(values))
    return float(np.mean(values)), std if std > 0 else 1.0


class ProfileRouter(LinearRouter):
    """Ridge per model (and on the pair's gap) on the query, then a ranking of the gap (or a logistic regression) on the profile."""

    name = "profile"
    learns_scores = True

    def __init__(self, *, ridge_min: float = 0.1, ridge_max: float = 1e5, ridges: int = 25, head: str = "gap", endings: bool = False,
                 lookup: bool | None = None, **linear: Any) -> None:
        super().__init__(**linear)
        if not 0 < ridge_min <= ridge_max:
            raise ValueError(f"need 0 < ridge_min <= ridge_max, got ridge_min={ridge_min!r}, ridge_max={ridge_max!r}")
        self.ridge_min, self.ridge_max = float(ridge_min), float(ridge_max)
        self.ridges = positive_int("ridges", ridges)
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; heads are {', '.join(HEADS)}")
        self.head = head
        self.endings = bool(endings)
        self.lookup = head == "gap" if lookup is None else bool(lookup)
        if self.lookup and head != "gap":
            raise ValueError(f"lookup blends the gap ranking with the cells' gaps: it needs head='gap', not {head!r}")

    def iter_fit(self, X: QueryFeatures, y: ScoreTargets) -> Iterator[int]:  # type: ignore[override]
        values = score_levels(self.name, X, y)
        observed = np.isfinite(y.scores)
        unanswered = [model for model, answered in zip(y.models, observed.any(axis=0)) if not answered]
        if unanswered:
            raise ValueError(f"model {unanswered[0]!r} has no score in the training data")
        self._encoder = InputEncoder.fit(X, self.branches)
        branches = self._encoder.transform(X)
        filled = np.where(observed, y.scores, np.nanmean(y.scores, axis=0))
        edge, cloud = y.models.index(y.edge), y.models.index(y.cloud)
        both = observed[:, edge] & observed[:, cloud]
        gap = filled[:, edge] - filled[:, cloud]
        groups = None if X.groups is None else np.asarray(X.groups)[both]
        alphas = np.geomspace(self.ridge_min, self.ridge_max, self.ridges)
        with limited_threads(self.num_threads):
            folds = inner_splits(len(X), self.inner_folds, self.random_state, groups=X.groups)
            stage_one = np.column_stack([filled, gap])
            scores = {name: CrossValidatedRidge(alphas).fit(matrix, stage_one, folds) for name, matrix in branches.items()}
            profile = np.concatenate([ridge.oof[both] for ridge in scores.values()], axis=1)
            endings = EndingGaps.fit([question_endings(X)[row] for row in np.flatnonzero(both)], gap[both]) if self.endings else None
            if endings is not None:
                ending_keys = np.asarray(question_endings(X), dtype=object)

                def ending_gaps(fit_rows: np.ndarray, held_rows: np.ndarray) -> np.ndarray:
                    kept = fit_rows[both[fit_rows]]
                    return EndingGaps.fit(list(ending_keys[kept]), gap[kept]).predict(list(ending_keys[held_rows]))

                profile = np.column_stack([profile, _held_out(folds, len(X), ending_gaps)[both]])
            ranking, cells, blend = None, None, None
            if self.head == "gap":
                ranking_folds = inner_splits(len(profile), self.inner_folds, self.random_state, groups=groups)
                ranking = CrossValidatedRidge(alphas).fit(profile, gap[both], ranking_folds)
                head_inputs = ranking.oof
                if self.lookup:
                    keys, answered_gap = CellKeys.of(X).take(both), gap[both]
                    held_out = _held_out(ranking_folds, len(answered_gap), lambda fit_rows, held_rows: CellGaps.fit(
                        keys.take(fit_rows), answered_gap[fit_rows]).predict(keys.take(held_rows)))
                    cells, blend = CellGaps.fit(keys, answered_gap), (*_spread(ranking.oof), *_spread(held_out))
                    head_inputs = blended_ranking(ranking.oof, held_out, blend)
            levels = values[1:] if y.rule == "mes" else np.array([y.mes])
            heads: dict[float, BaseEstimator | float] = {}
            for level in levels:
                labels = competence_labels(y.scores[both, edge], y.scores[both, cloud], mes=float(level), rule=y.rule, k=y.k)
                if len(np.unique(labels)) < 2:
                    heads[float(level)] = float(labels[0])
                elif ranking is None:
                    heads[float(level)] = self._estimator(labels, groups).fit(profile, labels)
                else:
                    heads[float(level)] = LogisticRegression().fit(head_inputs, labels)
        self._model = ProfileModel(scores=scores, endings=endings, gap=ranking, heads=heads, pair=y.pair_settings(),
                                   lowest=float(values[0]) if y.rule == "mes" else -np.inf, cells=cells, blend=blend)
        yield 0

    @property
    def fitted_pair(self) -> dict[str, Any]:
        """The edge, cloud, MES, label rule and k the router was fitted for."""
        return dict(self._profile().pair)

    def predict_proba(self, X: QueryFeatures) -> np.ndarray:
        pair = self._profile().pair
        return self.competence(X, **pair)

    def competence(self, X: QueryFeatures, *, edge: str, cloud: str, mes: float, rule: LabelRule = "mes", k: float = 1) -> np.ndarray:
        """P(edge competent) for the fitted pair and label rule at ``mes`` (any MES under the MES rule)."""
        model = self._profile()
        self._check_request(model, edge=edge, cloud=cloud, rule=rule, mes=mes, k=k)
        return self._head_proba(model.head_for(mes), self._head_inputs(X))

    def competence_by_level(self, X: QueryFeatures, *, edge: str, cloud: str) -> dict[float, np.ndarray]:
        """P(edge competent) under the MES rule at every score level above the lowest (none if fitted under another rule)."""
        model = self._profile()
        if model.pair["rule"] != "mes":
            return {}
        self._check_request(model, edge=edge, cloud=cloud, rule="mes", mes=model.pair["mes"], k=model.pair["k"])
        inputs = self._head_inputs(X)
        return {level: self._head_proba(head, inputs) for level, head in model.heads.items()}

    def _check_request(self, model: ProfileModel, *, edge: str, cloud: str, rule: LabelRule, mes: float, k: float) -> None:
        """Raise unless the request is for the fitted pair and rule (and, under a win rule, the fitted MES and k)."""
        fitted = model.pair
        if (edge, cloud, rule) != (fitted["edge"], fitted["cloud"], fitted["rule"]) or (rule != "mes" and (mes, k) != (fitted["mes"], fitted["k"])):
            raise ValueError(f"{self.name} was fitted for {fitted['edge']} (edge) / {fitted['cloud']} (cloud) under the "
                             f"{fitted['rule']} rule; asked for {edge} / {cloud} under {rule}: train it for that pair")

    def _head_inputs(self, X: QueryFeatures) -> np.ndarray:
        """What the heads read, one row per query: the predicted profile, or the gap ranking score."""
        model = self._profile()
        assert self._encoder is not None  # _profile checked it
        return model.head_inputs(self._encoder.transform(check_features(X)), X)

    @staticmethod
    def _head_proba(head: BaseEstimator | float, inputs: np.ndarray) -> np.ndarray:
        if isinstance(head, float):
            return np.full(len(inputs), head)
        return head.predict_proba(inputs)[:, 1].astype(np.float64)

    def _profile(self) -> ProfileModel:
        if not isinstance(self._model, ProfileModel) or self._encoder is None:
            raise self._not_fitted()
        return self._model
