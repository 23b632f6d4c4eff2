"""The demo's simulation truth: the file generate_demo writes, and its exact score and competence probabilities
checked against simulated draws and against the labels of a generated demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_MODELS, generate_demo
from ecvl_router.data.demo import simulation as sim
from ecvl_router.data.demo.task import Task
from ecvl_router.data.demo.truth import TRUTH_JSON, TRUTH_PARQUET, SimulationTruth, bayes_probabilities, load_truth
from ecvl_router.data.storage import write_parquet
from ecvl_router.labels import LABEL_RULES, competence_labels

EDGE, CLOUD = "sim-vlm-1b", "sim-vlm-38b"
MES = 6
DEMO_ITEMS = 300
DRAWS = 4000
MODELS = {m.name: m for m in DEMO_MODELS}


def _task(perception: float, steps: int) -> Task:
    return Task("text_reading", "What does the sign say?", "EXIT", None, "PNG", perception, steps, "EX1T", ("STOP",), "")


# Easy to hard: the size penalty grows with visible hardness, so the edge/cloud gap differs between them.
TASKS = {"clean": _task(0.2, 1), "blurred": _task(2.0, 1), "multi-step": _task(0.5, 4), "hard": _task(3.0, 3)}


@pytest.fixture(scope="module")
def truth() -> SimulationTruth:
    margins = pd.DataFrame(
        [[sim.visible_margin(task, model) for model in DEMO_MODELS] for task in TASKS.values()],
        index=pd.Index(list(TASKS), name="item_id"), columns=list(MODELS),
    )
    return sim.simulation_truth(margins)


@pytest.fixture(scope="module")
def simulated_scores() -> dict[str, dict[str, np.ndarray]]:
    """DRAWS scores per task for EDGE and CLOUD from the generator's own simulate_response, sharing the hidden hardness."""
    rng = np.random.default_rng(11)
    scores: dict[str, dict[str, np.ndarray]] = {}
    for name, task in TASKS.items():
        hidden = [sim.draw_item_hardness(rng) for _ in range(DRAWS)]
        scores[name] = {
            model: np.array([sim.simulate_response(task, MODELS[model], u, rng).score for u in hidden]) for model in (EDGE, CLOUD)
        }
    return scores


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("truth") / "demo"
    generate_demo(out, n_items=DEMO_ITEMS, seed=0)
    return out


def test_score_distributions_sum_to_one_and_match_simulated_scores(
    truth: SimulationTruth, simulated_scores: dict[str, dict[str, np.ndarray]]
) -> None:
    for model in (EDGE, CLOUD):
        distribution = truth.score_distribution(list(TASKS), model)
        assert distribution.shape == (len(TASKS), 10) and (distribution >= 0).all()
        np.testing.assert_allclose(distribution.sum(axis=1), 1.0, atol=1e-12)
        for row, name in enumerate(TASKS):
            observed = np.bincount(simulated_scores[name][model] - 1, minlength=10) / DRAWS
            standard_error = np.sqrt(distribution[row] * (1 - distribution[row]) / DRAWS)
            assert (np.abs(observed - distribution[row]) <= 4 * standard_error + 1e-3).all(), (name, model)


@pytest.mark.parametrize("rule", LABEL_RULES)
def test_competence_probability_matches_monte_carlo(
    rule: str, truth: SimulationTruth, simulated_scores: dict[str, dict[str, np.ndarray]]
) -> None:
    exact = truth.competence_probability(list(TASKS), EDGE, CLOUD, mes=MES, rule=rule, k=1)
    for probability, name in zip(exact, TASKS):
        drawn = simulated_scores[name]
        frequency = competence_labels(drawn[EDGE], drawn[CLOUD], mes=MES, rule=rule, k=1).mean()
        assert abs(frequency - probability) <= 4 * np.sqrt(probability * (1 - probability) / DRAWS) + 1e-3, name


def test_the_shared_hidden_hardness_is_not_ignored(truth: SimulationTruth) -> None:
    """With independent scores, win-hard would be far less likely on the clean item, where the models are alike."""
    ties_and_wins = truth.competence_probability(["clean"], EDGE, CLOUD, mes=MES, rule="win-hard")[0]
    edge, cloud = truth.score_distribution(["clean"], EDGE)[0], truth.score_distribution(["clean"], CLOUD)[0]
    independent = sum(edge[s] * cloud[: s + 1].sum() for s in range(10))
    assert ties_and_wins > independent + 0.05  # 0.66 against 0.58


@pytest.mark.parametrize("rule", LABEL_RULES)
def test_mean_probability_matches_the_label_share_of_a_generated_demo(rule: str, demo: Path) -> None:
    view = load_rsd(demo).pair(EDGE, CLOUD)
    probability = bayes_probabilities(load_truth(demo), view, mes=MES, rule=rule, k=1)
    labels = competence_labels(view.score_edge, view.score_cloud, mes=MES, rule=rule, k=1)
    assert probability.shape == (len(view),) == (DEMO_ITEMS,)
    standard_error = np.sqrt((probability * (1 - probability)).sum()) / len(view)
    assert abs(probability.mean() - labels.mean()) <= 3 * standard_error
    assert probability[labels == 1].mean() > probability[labels == 0].mean()  # the truth tells the labels apart


def test_bayes_probabilities_follow_the_pair_view_order(demo: Path) -> None:
    view = load_rsd(demo).pair(EDGE, CLOUD)
    truth = load_truth(demo)
    reversed_view = view.take(np.arange(len(view))[::-1])
    np.testing.assert_array_equal(bayes_probabilities(truth, reversed_view, mes=MES, rule="mes"),
                                  bayes_probabilities(truth, view, mes=MES, rule="mes")[::-1])


def test_the_truth_file_holds_every_visible_margin_and_the_constants(demo: Path) -> None:
    table = pq.read_table(demo / TRUTH_PARQUET).to_pandas()
    assert list(table.columns) == ["item_id", "model", "visible_margin"]
    assert len(table) == DEMO_ITEMS * len(DEMO_MODELS) and not table.duplicated(["item_id", "model"]).any()
    constants = json.loads((demo / TRUTH_JSON).read_text())
    assert {k: constants[k] for k in ("sigma_item", "sigma_noise", "score_center", "score_scale", "score_min", "score_max")} == {
        "sigma_item": sim.SIGMA_ITEM, "sigma_noise": sim.SIGMA_NOISE, "score_center": sim.SCORE_CENTER,
        "score_scale": sim.SCORE_SCALE, "score_min": 1, "score_max": 10,
    }
    assert "no router" in constants["note"]
    assert set(table["item_id"]) == set(load_rsd(demo).items["item_id"])


def test_datasets_without_truth_load_none_and_import_leaves_it_behind(demo: Path, tiny_rsd: Path, tmp_path: Path) -> None:
    assert load_truth(tiny_rsd) is None
    imported = write_parquet(load_rsd(demo), tmp_path / "native")
    assert load_truth(imported) is None
    assert len(load_rsd(imported).items) == DEMO_ITEMS


def test_missing_items_models_and_a_pair_of_one_model_are_refused(truth: SimulationTruth) -> None:
    with pytest.raises(KeyError, match="no-such-item"):
        truth.score_distribution(["clean", "no-such-item"], EDGE)
    with pytest.raises(KeyError, match="sim-vlm-99b"):
        truth.competence_probability(["clean"], EDGE, "sim-vlm-99b", mes=MES)
    with pytest.raises(ValueError, match="different models"):
        truth.competence_probability(["clean"], EDGE, EDGE, mes=MES)
