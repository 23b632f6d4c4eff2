import pytest

from ecvl_router import SCENARIOS, Scenario
from ecvl_router.scenarios import ScenarioError, load_scenarios, resolve_scenario


def test_presets_are_the_papers_rcs1_2_3_at_mes_6():
    assert [(s.alpha, s.beta, s.gamma, s.mes) for s in SCENARIOS.values()] == [
        (1.2, 0.1, 0.001, 6),
        (1.0, 0.12, 0.001, 6),
        (1.0, 0.1, 0.0015, 6),
    ]
    assert list(SCENARIOS) == ["quality", "efficiency", "speed"]


def test_resolve_by_name_alias_and_mes_override():
    assert resolve_scenario("RCS3")[0].name == "speed"
    assert resolve_scenario("quality", mes=7)[0].mes == 7
    with pytest.raises(ScenarioError, match="unknown scenario 'fast'"):
        resolve_scenario("fast")


def test_yaml_scenarios_and_field_errors(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text("scenarios:\n  - {name: privacy, mes: 5, alpha: 1, beta: 0.5, gamma: 0, cloud_allowed: false}\n")
    (scenario,) = load_scenarios(good)
    assert scenario == Scenario(name="privacy", mes=5, alpha=1, beta=0.5, gamma=0, cloud_allowed=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: x, mes: 5, alpha: 1, beta: -1, gamma: 0}\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: scenario #1: field beta"):
        load_scenarios(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("- {name: x, alpha: 1, beta: 1, gamma: 0, weight: 3}\n")
    with pytest.raises(ScenarioError, match="field weight"):
        load_scenarios(unknown)


def test_mes_validated_against_scale():
    SCENARIOS["quality"].check_scale(1, 10)
    with pytest.raises(ScenarioError, match=r"outside the dataset's score scale \[0, 1\]"):
        SCENARIOS["quality"].check_scale(0, 1)
    SCENARIOS["quality"].with_mes(0.6).check_scale(0, 1)
