"""`ecvl-router reproduce --quick` end to end with the real default encoders (what CI exercises)."""

import json
import re

import pytest
from typer.testing import CliRunner

from ecvl_router.cli import app

pytestmark = pytest.mark.slow


def test_quick_reproduction_on_a_small_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("ECVL_ROUTER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--items", "300", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text(encoding="utf-8")
    for label in ("Figure 3", "Figure 7", "**Table 1.**", "Figure 2 (", "Figure 8", "**Table 2a.**", "**Table 3.**",
                  "**Table 4.**", "Figure 9", "Figure 11", "Figure 12", "**Table 8.**", "Obs 7",
                  "Cross-validated router comparison", "Figure R (router comparison)"):
        assert label in text, label
    latency = re.search(r"\| routing decision, end to end \| ([\d.]+) \|", text)
    assert latency and float(latency.group(1)) > 0  # measured with the real extractor
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(list(out.glob("*.png"))) == 15
    assert (out / "comparison_cost_quality.png").is_file() and "comparison_cost_quality.png" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["quick"] and manifest["settings"]["seeds"] == [0] and manifest["routers_trained"] > 0

    again = CliRunner().invoke(app, ["reproduce", "--quick", "--items", "300", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["routers_trained"] == 0


def test_reproduce_rejects_unknown_sources_and_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("ECVL_ROUTER_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    result = runner.invoke(app, ["reproduce", "--quick", "--items", "100", "--out", str(tmp_path / "r"), "--holdout-sources", "nope"])
    assert result.exit_code == 1 and "held-out sources not in dataset" in result.output
    result = runner.invoke(app, ["reproduce", "--quick", "--items", "100", "--out", str(tmp_path / "r"), "--pairs", "big"])
    assert result.exit_code == 1 and "must be written CLOUD/EDGE" in result.output
