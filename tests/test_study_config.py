"""The study's configuration (the gateway YAML's ``study`` section) and the checks made when it loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from ecvl_router.cli import app as cli_app
from ecvl_router.config import ConfigError
from ecvl_router.serve import example_config
from ecvl_router.study.config import load_study_gateway_config
from ecvl_router.study import DEFAULT_SCENARIOS, StudyConfig
from ecvl_router.study.policies import PolicyRouter, policy_key
from tests.serve_support import CLOUD, EDGE, demo_data, tiny_bundle  # noqa: F401
from tests.study_support import study_settings

FIXED = [{"name": "all-large", "route": "cloud"}, {"name": "all-small", "route": "edge"}]


def test_defaults_are_the_papers_two_scenarios() -> None:
    config = StudyConfig(policies=FIXED)
    assert [(s.name, s.mes) for s in config.scenarios] == [("quality", 7), ("speed", 5)] == [(s.name, s.mes) for s in DEFAULT_SCENARIOS]
    assert config.rating == "score" and config.database == Path("study.db") and config.policy_names == ["all-large", "all-small"]


@pytest.mark.parametrize(
    "policies, words",
    [
        ([{"name": "both", "route": "edge", "bundles": {"quality": "a", "speed": "b"}}], "either 'route'"),
        ([{"name": "neither"}], "either 'route'"),
        ([{"name": "ecvl", "bundles": {"quality": "runs/q"}}], "no bundle for scenario(s) speed"),
        ([{"name": "ecvl", "bundles": {"quality": "q", "speed": "s", "privacy": "p"}}], "unknown scenario(s) privacy"),
        ([*FIXED, {"name": "all-large", "route": "edge"}], "repeated: all-large"),
        ([{"name": "a/b", "route": "edge"}], "pattern"),
        ([{"name": "x", "route": "somewhere"}], "route"),
        ([], "at least 1"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(policies: list, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        StudyConfig(policies=policies)
    assert words in str(caught.value)


def test_gateway_yaml_with_a_study_resolves_paths_beside_the_file(tmp_path: Path) -> None:
    document = yaml.safe_load(example_config())
    document["study"] = {
        "database": "studies/one.db",
        "rating": "yes_no",
        "policies": [{"name": "ecvl", "bundles": {"quality": "runs/q7", "speed": "/abs/s5"}}, *FIXED],
        "demo_data": "data",
    }
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(document))
    study = load_study_gateway_config(tmp_path / "gateway.yaml").study
    assert study.database == tmp_path / "studies" / "one.db" and study.demo_data == tmp_path / "data"
    assert study.policies[0].bundles == {"quality": tmp_path / "runs" / "q7", "speed": Path("/abs/s5")}
    assert study.rating == "yes_no"
    assert load_study_gateway_config_without_study(tmp_path).study is None


def load_study_gateway_config_without_study(folder: Path):
    document = yaml.safe_load(example_config())
    (folder / "plain.yaml").write_text(yaml.safe_dump(document))
    return load_study_gateway_config(folder / "plain.yaml")


def test_a_typo_in_the_study_section_names_the_field(tmp_path: Path) -> None:
    document = yaml.safe_load(example_config())
    document["study"] = {"policies": FIXED, "raiting": "score"}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="study.raiting"):
        load_study_gateway_config(tmp_path / "gateway.yaml")


# ---------------------------------------------------------------------- bundles checked against the study
def test_policy_router_decides_per_scenario_and_policy(tiny_bundle: Path, tmp_path: Path) -> None:
    study = StudyConfig(**study_settings(tiny_bundle, tmp_path / "study.db"))
    router = PolicyRouter.load(study, {"edge": EDGE, "cloud": CLOUD})
    assert set(router.scenarios) == {policy_key(s, p) for s in ("quality", "speed") for p in study.policy_names}
    fixed = router.decide("What is shown?", None, "quality/all-small")
    assert (fixed.route, fixed.p, fixed.tau, fixed.scenario) == ("edge", 1.0, 0.5, "quality/all-small")
    assert router.decide("What is shown?", None, "speed/all-large").route == "cloud"
    learned = router.decide("What is shown?", None, "quality/ecvl")
    assert learned.route == "cloud" and learned.tau == 1.0 and 0 <= learned.p < 1 and learned.scenario == "quality/ecvl"
    assert router.tau("speed/win-soft-1") == 0.0 and router.tau("speed/all-small") == 0.5


def test_a_bundle_trained_at_another_mes_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    settings = study_settings(tiny_bundle, tmp_path / "study.db")
    settings["scenarios"][0]["mes"] = 7
    with pytest.raises(ConfigError, match=r"at MES 6, the study's scenario has MES 7; train it with `--scenario quality --mes 7`"):
        PolicyRouter.load(StudyConfig(**settings), {"edge": EDGE, "cloud": CLOUD})


def test_bundles_for_another_pair_or_scenario_or_no_bundle_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    study = StudyConfig(**study_settings(tiny_bundle, tmp_path / "study.db"))
    with pytest.raises(ConfigError, match=f"trained for the edge model '{EDGE}', the gateway's bundle for 'other-vlm'"):
        PolicyRouter.load(study, {"edge": "other-vlm", "cloud": CLOUD})
    renamed = study_settings(tiny_bundle, tmp_path / "study.db")
    renamed["scenarios"][1]["name"] = "fast"
    renamed["policies"][0]["bundles"] = {"quality": tiny_bundle, "fast": tiny_bundle}
    renamed["policies"][3]["bundles"] = {"quality": tiny_bundle, "fast": tiny_bundle}
    with pytest.raises(ConfigError, match="has no scenario 'fast'; it has: quality, speed, privacy"):
        PolicyRouter.load(StudyConfig(**renamed), {"edge": EDGE, "cloud": CLOUD})
    missing = study_settings(tiny_bundle, tmp_path / "study.db")
    missing["policies"][3]["bundles"] = {"quality": tmp_path / "nowhere", "speed": tiny_bundle}
    with pytest.raises(ConfigError, match="policy 'win-soft-1': cannot load the router bundle"):
        PolicyRouter.load(StudyConfig(**missing), {"edge": EDGE, "cloud": CLOUD})


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda s, tmp: s["scenarios"][1].update(mes=5), "at MES 6, the study's scenario has MES 5"),
        (lambda s, tmp: s.update(demo_data=tmp), "study.demo_data: no demo images from"),
    ],
)
def test_serve_reports_a_study_that_cannot_start(tiny_bundle: Path, tmp_path: Path, change, words: str) -> None:
    settings = study_settings(tiny_bundle, tmp_path / "study.db")
    change(settings, tmp_path / "empty")
    document = yaml.safe_load(example_config())
    document.update(bundle=str(tiny_bundle), study=_plain(settings))
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(cli_app, ["serve", "--config", str(tmp_path / "gateway.yaml")])
    assert result.exit_code == 1 and words in result.output


def _plain(value):
    """``value`` with paths as strings, for YAML."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def test_study_demo_writes_a_gateway_config_with_the_four_policies(tmp_path: Path) -> None:
    from ecvl_router.cli.study import _demo_gateway_config

    bundles = {policy: {"quality": f"runs/{policy}-quality", "speed": f"runs/{policy}-speed"} for policy in ("ecvl", "win-soft-1")}
    (tmp_path / "gateway.yaml").write_text(_demo_gateway_config(bundles, 8100, seed=3))
    config = load_study_gateway_config(tmp_path / "gateway.yaml")
    assert config.bundle == tmp_path / "runs" / "ecvl-quality" and config.port == 8100
    assert config.edge.base_url == "http://127.0.0.1:8101/v1" and config.cloud.base_url == "http://127.0.0.1:8102/v1"
    study = config.study
    assert study.policy_names == ["ecvl", "all-large", "all-small", "win-soft-1"] and study.seed == 3
    assert [(s.name, s.mes) for s in study.scenarios] == [("quality", 7), ("speed", 5)]
    assert study.policies[3].bundles["speed"] == tmp_path / "runs" / "win-soft-1-speed" and study.demo_data == tmp_path / "data"


def test_the_example_configurations_commented_study_is_valid() -> None:
    text = example_config()
    assert yaml.safe_load(text)["study"] is None  # off by default
    commented = "\n".join(line[2:] for line in text.split("study: null", 1)[1].splitlines() if line.startswith("# "))
    study = StudyConfig.model_validate(yaml.safe_load(commented)["study"])
    assert study.policy_names == ["ecvl", "all-large", "all-small", "win-soft-1"]
    assert [(s.name, s.mes) for s in study.scenarios] == [("quality", 7), ("speed", 5)]
