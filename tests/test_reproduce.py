"""`ecvl-router reproduce` on a small demo benchmark with stand-in encoders and tiny routers.

One module-scoped run builds the whole report; the tests check its sections, figures, tables and HTML,
and that a second run with the same cache trains nothing and reproduces every table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ecvl_router import SCENARIOS
from ecvl_router.data import load_rsd
from ecvl_router.data.demo import DEMO_PAIRS, generate_demo
from ecvl_router.experiments.cross_domain import DEMO_HOLDOUT_SOURCES, default_holdout_sources
from ecvl_router.experiments.main_table import ModelPair
from ecvl_router.experiments.mes_sweep import advantages, risk_band, risk_map
from ecvl_router.experiments.observations import check_observations
from ecvl_router.experiments.reproduce import GUARANTEE_CONFIDENCES, GUARANTEE_DROPS, TABLES, reproduce_settings, run_reproduce
from ecvl_router.experiments.scale import from_paper_scale, mes_grid, paper_unit
from ecvl_router.features.extractor import FeatureExtractor
from ecvl_router.learning.guarantee_check import POLICIES
from ecvl_router.features.features import QueryFeatures
from ecvl_router.report.reproduce_report import write_reproduce_report
from ecvl_router.learning.runs import rsd_features

TINY_ROUTERS = {
    "ecvl": {"d_model": 16, "ffn": 32, "heads": 2, "epochs": 2},
    "mlp": {"hidden": (16, 8), "epochs": 2},
    "mf": {"dim": 8, "epochs": 2},
    "gbdt": {"max_iter": 5},
    "ecvl-multi": {"d_model": 16, "epochs": 2},
    "linear": {"penalties": 3, "inner_folds": 3},
}
SECTIONS = (
    "Dataset analysis", "Figure 3", "Figure 4", "Figure 5", "Figure 6", "Figure 7", "**Table 1.**", "Figure 2 (", "Figure 8",
    "**Table 2a.**", "**Table 2b.**", "**Table 3.**", "**Table 4.**", "BARTScore", "Figure 9", "Figure 11", "Figure 12",
    "**Table 8.**", "Cross-validated router comparison", "Figure R (router comparison)",
    "Cost–quality curves of the comparison", "Figure R2 (cost–quality curves)",
    "Quality guarantee on fresh data", "**Table G.**", "Figure G (quality guarantee)", "Settings, seeds, dataset and wall time", "Wall time", "observations on this dataset", "**Obs 7 — ",
)


class StandInText:
    """A text 'encoder': a vector seeded by the text's hash plus its word count (fast, deterministic)."""

    dim = 6
    identity = "stand-in-text@1"

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            rows.append([*np.random.default_rng(seed).standard_normal(self.dim - 1), len(text.split())])
        return np.asarray(rows, dtype=np.float32)


class StandInImage:
    """An image 'encoder': mean colour, width and height."""

    dim = 5
    identity = "stand-in-image@1"

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.asarray([[*np.asarray(i.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)), *i.size] for i in images], dtype=np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return batch.copy()

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return self.embed(self.prepare(images))


def _run(rsd, cache: Path):
    extractor = FeatureExtractor(StandInText(), StandInImage(), overlap=False)  # type: ignore[arg-type]
    features = rsd_features(rsd, extractor, cache_dir=cache)
    settings = reproduce_settings(rsd, pairs=[ModelPair(*DEMO_PAIRS[0]), ModelPair(*DEMO_PAIRS[2])], seeds=2, quick=False)
    settings = dataclasses.replace(settings, router_params=TINY_ROUTERS, mes_points=(3.0, 6.0, 8.0), latency_queries=2)
    stages: list[str] = []
    results = run_reproduce(rsd, features, settings, cache_dir=cache, feature_identity=extractor.identity(), extractor=extractor,
                            on_experiment=lambda name, index, total: stages.append(name))
    return results, stages


@pytest.fixture(scope="module")
def demo_rsd(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce") / "data"
    generate_demo(root, n_items=240, seed=2)
    return load_rsd(root)


@pytest.fixture(scope="module")
def first_run(demo_rsd, tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    results, stages = _run(demo_rsd, base / "cache")
    files = write_reproduce_report(results, demo_rsd, base / "report", wall_seconds=1.0)
    return base / "cache", results, files, stages


def test_report_has_every_section_and_announces_every_experiment(first_run):
    _, results, files, stages = first_run
    text = files.markdown.read_text(encoding="utf-8")
    missing = [section for section in SECTIONS if section not in text]
    assert not missing, f"sections missing from report.md: {missing}"
    assert len(stages) == 10 and stages[0].startswith("Dataset analysis") and stages[-1].startswith("Quality guarantee")
    assert results.latency is not None and set(results.latency.seconds) and all(len(v) == 2 for v in results.latency.seconds.values())
    # every figure and table has a caption
    assert len(re.findall(r"^!\[", text, flags=re.M)) == len(files.figures)
    for line in re.findall(r"^!\[.*$", text, flags=re.M):
        assert text.split(line, 1)[1].lstrip().startswith("*Figure")


def test_every_figure_is_a_valid_non_blank_png(first_run):
    _, _, files, _ = first_run
    assert len(files.figures) == 5 + 2 + 1 + 1 + 2 + 2 + 1  # Figs 3–7, Fig 2 per pair, 8, 9, 11–12, router comparison and its curves, guarantee
    for path in files.figures:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
        assert pixels.std() > 5, f"{path.name} looks blank"


def test_every_table_row_satisfies_the_rcs_identity(first_run):
    _, _, files, _ = first_run
    assert {p.name for p in files.tables} >= {"table1.csv", "table3_ablation.csv", "table4_label_strategies.csv", "mes_sweep.csv",
                                              "table8_cross_domain.csv", "table2_latency.csv"}
    checked = 0
    for path in files.tables:
        frame = pd.read_csv(path)
        if "rcs" not in frame:
            continue
        for row in frame.itertuples():
            scenario = SCENARIOS[row.scenario].with_mes(row.mes)
            assert row.rcs == pytest.approx(scenario.rcs(row.apsp, row.ca, row.ail), abs=1e-9), (path.name, row)
            checked += 1
    assert checked > 100


def test_tables_hold_what_the_paper_compares(first_run):
    _, results, _, _ = first_run
    main = results.table("main")
    assert set(main["seed"]) == {0, 1} and set(main["pair"]) == {ModelPair(*DEMO_PAIRS[0]).label, ModelPair(*DEMO_PAIRS[2]).label}
    ablation = results.table("ablation")
    assert {"ecvl (full)", "w/o image", "only statistics", "random", "all-large", "all-small"} <= set(ablation["variant"])
    full = ablation[ablation["variant"] == "ecvl (full)"].set_index("scenario")["rcs"]
    table1 = main[(main["router"] == "ecvl") & (main["seed"] == 0) & (main["pair"] == results.settings.main_pair.label)]
    assert np.allclose(full.loc[table1["scenario"]].to_numpy(), table1["rcs"].to_numpy())  # same settings, same router
    strategies = results.table("strategy")
    assert list(dict.fromkeys(strategies["strategy"])) == ["MES rule", "win-hard", "win-soft(1)", "win-soft(2)"]
    assert strategies.groupby("strategy")["n_test"].nunique().eq(1).all() and strategies["n_test"].nunique() == 1  # one test set
    sweep = results.table("sweep")
    assert sorted(sweep["mes"].unique()) == [3.0, 6.0, 8.0]
    cross = results.table("cross_domain")
    held_out = results.first_seed_results[0].task.pair.sources
    assert set(results.settings.holdout_sources) == set(DEMO_HOLDOUT_SOURCES) & set(held_out)
    assert cross["n_test"].iloc[0] == np.isin(held_out, DEMO_HOLDOUT_SOURCES).sum()
    for curve in results.alignment:
        assert len(curve.validation) == len(curve.test) == 21 and 0 <= curve.mean_abs_diff


def test_the_guarantee_is_checked_at_every_bound_and_confidence(first_run):
    _, results, files, _ = first_run
    summary = results.guarantee.summary
    assert len(results.guarantee.p) == len(results.first_seed_results[0].task.pair)
    expected = {(d, c, p) for d in GUARANTEE_DROPS for c in GUARANTEE_CONFIDENCES for p in POLICIES}
    assert set(zip(summary["max_quality_drop"], summary["confidence"], summary["policy"])) == expected
    assert (summary["repetitions"] == results.settings.guarantee_repetitions).all()
    assert summary["edge_share"].between(0, 1).all() and summary["violation_rate"].between(0, 1).all()
    table = pd.read_csv(files.markdown.parent / "guarantee_summary.csv")
    assert len(table) == len(expected)


def test_observations_are_checked_against_the_results(first_run):
    _, results, _, _ = first_run
    observations = check_observations(results)
    assert [o.number for o in observations] == list(range(1, 8))
    assert all(o.verdict in ("holds", "does not hold", "not determined") and o.evidence for o in observations)
    main = results.table("main").query("router != 'oracle'").groupby(["pair", "scenario", "router"])["rcs"].mean()
    ecvl_always_best = all(group.idxmax()[2] == "ecvl" for _, group in main.groupby(level=[0, 1]))
    assert (observations[0].verdict == "holds") == ecvl_always_best


def test_html_embeds_every_figure(first_run):
    _, _, files, _ = first_run
    html = files.html.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == len(files.figures)
    assert not re.search(r'src="[^"]+\.png"', html)
    assert "<table>" in html and "Table 8" in html
    assert "τ*" in html and "τ\\*" not in html  # the star of τ* is literal, not emphasis


def test_second_run_trains_nothing_and_reproduces_the_tables(first_run, demo_rsd):
    cache, results, _, _ = first_run
    again, _ = _run(demo_rsd, cache)
    assert results.ledger.trained > 0 and again.ledger.trained == 0 and again.ledger.reused == results.ledger.trained + results.ledger.reused
    for name in TABLES:
        pd.testing.assert_frame_equal(again.table(name), results.table(name))


def test_scale_helpers_follow_the_score_scale():
    assert from_paper_scale(6, 1, 10) == 6 and from_paper_scale(6, 0, 1) == pytest.approx(5 / 9, abs=1e-6)
    assert paper_unit(1, 10) == 1 and paper_unit(0, 100) == pytest.approx(100 / 9, abs=1e-5)
    assert mes_grid([1, 5, 10], 1, 10) == tuple(float(v) for v in range(1, 10))
    assert mes_grid([0.2, 0.75], 0, 1) == pytest.approx([0.1 * i for i in range(1, 10)])
    assert risk_band(0.1) == "safe" and risk_band(0.3) == "caution" and risk_band(0.5) == "high risk"


def test_sweep_summaries():
    rows = [{"mes": m, "scenario": "quality", "router": r, "seed": 0, "apsp": a, "ca": c, "ail": 1.0, "rcs": rcs}
            for m, r, a, c, rcs in ((5, "ecvl", 0.9, 0.8, 1.0), (5, "gbdt", 0.8, 0.5, 0.7), (5, "all-large", 0.95, 0.0, 0.6))]
    table = advantages(rows).set_index("router")["advantage"]
    assert table["ecvl"] == pytest.approx(0.3) and table["gbdt"] == pytest.approx(-0.3) and table["all-large"] == pytest.approx(-0.4)
    risk = risk_map(rows, "quality")
    assert risk["failure_rate"].iloc[0] == pytest.approx(0.1) and risk["band"].iloc[0] == "safe"


def test_default_holdout_and_bad_settings(demo_rsd):
    chosen = default_holdout_sources(demo_rsd)
    counts = demo_rsd.items["source"].value_counts()
    assert counts[list(chosen)].sum() >= 0.2 * len(demo_rsd.items) and len(chosen) < len(counts)
    with pytest.raises(ValueError, match="not in dataset"):
        reproduce_settings(demo_rsd, holdout_sources=["no-such-source"])
    with pytest.raises(ValueError, match="model 'nope' is not in dataset"):
        reproduce_settings(demo_rsd, pairs=[ModelPair("nope", DEMO_PAIRS[0][1])])
    with pytest.raises(ValueError, match="outside the dataset's score scale"):
        reproduce_settings(demo_rsd, mes=11)


def _write_unit_scale_rsd(root: Path, n: int = 90) -> Path:
    """Two models scored on a continuous 0–1 scale, three sources, a third of the items text-only."""
    import json

    rng = np.random.default_rng(5)
    (root / "images").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"name": "unit-scale", "score_min": 0, "score_max": 1, "description": "test data"}))
    items, responses = [], []
    for i in range(n):
        source = ("alpha", "beta", "gamma")[i % 3]
        image = None
        if i % 3:
            image = f"images/{i}.png"
            Image.new("RGB", (16 + i % 7, 12), (i * 3 % 256, 80, 160)).save(root / image)
        items.append({"item_id": f"u{i}", "source": source, "question": f"Question {i} about {source}?", "image": image,
                      "reference": None})
        hardness = rng.uniform(0, 1)
        for model, skill, latency in (("big", 0.25, 3.0), ("small", 0.0, 0.6)):
            score = float(np.clip(1 - hardness + skill + rng.normal(0, 0.15), 0, 1))
            responses.append({"item_id": f"u{i}", "model": model, "response": "…", "score": round(score, 3),
                              "latency_s": latency * rng.uniform(0.7, 1.5), "output_tokens": int(rng.integers(5, 50))})
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (root / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    return root


def test_any_score_scale_and_no_extractor(tmp_path):
    rsd = load_rsd(_write_unit_scale_rsd(tmp_path / "data"))
    settings = reproduce_settings(rsd, seeds=1)
    assert settings.pairs == (ModelPair("big", "small"),)  # the only pair, higher mean score as cloud
    assert settings.mes == pytest.approx(5 / 9, abs=1e-6) and settings.mes_points == pytest.approx([0.1 * i for i in range(1, 10)])
    assert [s.k for s in settings.strategies[2:]] == pytest.approx([1 / 9, 2 / 9], abs=1e-6)
    assert settings.holdout_sources == ("alpha",)  # smallest source (ties by name) covering >= 20 %
    settings = dataclasses.replace(settings, router_params=TINY_ROUTERS, mes_points=settings.mes_points[3:6])
    rng = np.random.default_rng(0)
    n = len(rsd.items)
    features = QueryFeatures(item_ids=rsd.items["item_id"].to_numpy(dtype=object), text=rng.normal(size=(n, 4)).astype(np.float32),
                             image=rng.normal(size=(n, 3)).astype(np.float32), stats=rng.normal(size=(n, 2)).astype(np.float32),
                             has_image=rsd.items["image"].notna().to_numpy())
    results = run_reproduce(rsd, features, settings, cache_dir=tmp_path / "cache", feature_identity={"synthetic": 1})
    assert results.latency is None and "no feature extractor" in results.latency_skipped
    assert check_observations(results)[4].verdict == "not determined"
    assert set(results.table("main")["mes"]) == {settings.mes}
    assert sorted(results.table("sweep")["mes"].unique()) == pytest.approx([0.4, 0.5, 0.6])
    assert list(dict.fromkeys(results.table("strategy")["strategy"])) == ["MES rule", "win-hard", "win-soft(0.111111)", "win-soft(0.222222)"]
