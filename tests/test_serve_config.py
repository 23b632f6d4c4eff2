"""Gateway configuration: the shipped example, validation messages that name the field, secrets from the
environment, and the `serve` / `backend-sim` commands' argument handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ecvl_router.cli import app
from ecvl_router.config import ConfigError
from ecvl_router.serve import GatewayConfig, example_config, load_gateway_config


def test_example_config_is_valid_and_printed_by_the_command() -> None:
    text = example_config()
    config = GatewayConfig.model_validate(yaml.safe_load(text))
    assert config.bundle == Path("runs/demo") and config.default_scenario == "quality"
    assert config.images.allow_private_networks is False and config.fallback.edge_to_cloud is True
    result = CliRunner().invoke(app, ["serve", "--example-config"])
    assert result.exit_code == 0 and result.stdout == text
    assert "# " in text and "api_key_env" in text


def test_relative_paths_are_taken_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "gateway.yaml"
    path.write_text(example_config())
    config = load_gateway_config(path)
    assert config.bundle == tmp_path / "conf" / "runs" / "demo"
    assert config.decision_log == tmp_path / "conf" / "decisions.jsonl"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"edge": {"base_url": "ftp://example.com/v1"}}, "edge.base_url", "http"),
        ({"cloud": {"base_url": "http://x/v1", "api_key_env": "sk-live-123"}}, "cloud.api_key_env", "NAME of an environment variable"),
        ({"limits": {"max_image_pixels": 0}}, "limits.max_image_pixels", "greater than or equal"),
        ({"images": {"allow_private": True}}, "images.allow_private", "Extra inputs"),
        ({"port": 70000}, "port", "less than or equal"),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path: Path, change: dict, field: str, words: str) -> None:
    document = yaml.safe_load(example_config())
    for key, value in change.items():
        document[key] = {**document[key], **value} if isinstance(document.get(key), dict) else value
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    assert str(path) in str(caught.value) and field in str(caught.value) and words in str(caught.value)
    assert "sk-live-123" not in str(caught.value)


def test_keys_come_from_the_environment(monkeypatch) -> None:
    config = GatewayConfig.model_validate(
        {**yaml.safe_load(example_config()), "api_keys_env": "GW_KEYS", "edge": {"base_url": "http://e/v1", "api_key_env": "EDGE_KEY"}}
    )
    monkeypatch.delenv("GW_KEYS", raising=False)
    monkeypatch.delenv("EDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match="GW_KEYS"):
        config.client_keys()
    with pytest.raises(ConfigError, match=r"EDGE_KEY \(edge.api_key_env\)"):
        config.edge.api_key("edge")
    monkeypatch.setenv("GW_KEYS", " a , b,,")
    monkeypatch.setenv("EDGE_KEY", "secret")
    assert config.client_keys() == ("a", "b") and config.edge.api_key("edge") == "secret"
    assert config.cloud.api_key("cloud") is None


def test_serve_needs_a_config_and_a_readable_bundle(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and "--config" in result.output
    path = tmp_path / "gateway.yaml"
    path.write_text(example_config())
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 1 and "runs/demo" in result.output and "manifest" in result.output


def test_backend_sim_rejects_an_unknown_model(tmp_path: Path) -> None:
    from ecvl_router.data.demo import generate_demo

    data = generate_demo(tmp_path / "demo", n_items=12, seed=1).out_dir
    result = CliRunner().invoke(app, ["backend-sim", "--data", str(data), "--model", "gpt-4o"])
    assert result.exit_code == 1 and "gpt-4o" in result.output and "sim-vlm-1b" in result.output
    help_text = CliRunner().invoke(app, ["backend-sim", "--help"]).output
    assert "Development tool" in help_text and "SIMULATED" in help_text
