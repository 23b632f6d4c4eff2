"""Shared configuration helpers: a key pasted in place of a variable name never appears in a message."""

from __future__ import annotations

import pytest

from ecvl_router.collect.config import BackendConfig, resolve_api_key
from ecvl_router.config import ConfigError, key_from_environment, keys_from_environment, shows_as_variable_name
from ecvl_router.serve.config import BackendSpec

GOOGLE_STYLE_KEY = "AIzaSyD4x9Qk2LmN7pRsT1uVwXyZ0aBcDeFgHiJ"  # letters and digits: passes as a variable name


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "CLOUD_KEY", "GPT4O_KEY", "KEY2", "AZURE_OPENAI_API_KEY_2024"])
def test_conventional_names_are_shown(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(name, raising=False)
    assert shows_as_variable_name(name)
    with pytest.raises(ConfigError, match=f"environment variable {name} \\(api_key_env\\) is not set"):
        key_from_environment(name, "api_key_env")


@pytest.mark.parametrize(
    "name", [GOOGLE_STYLE_KEY, "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AKIAIOSFODNN7EXAMPLE", "my_key", "x" * 60]
)
def test_a_name_that_could_be_a_key_is_never_printed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(name, raising=False)
    assert not shows_as_variable_name(name)
    with pytest.raises(ConfigError) as caught:
        key_from_environment(name, "edge.api_key_env")
    message = str(caught.value)
    assert name not in message
    assert "edge.api_key_env" in message and "export" in message  # says what to do instead
    with pytest.raises(ConfigError) as caught:
        keys_from_environment(name, "api_keys_env")
    assert name not in str(caught.value)


def test_collect_and_serve_configs_keep_a_pasted_key_out_of_messages_and_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GOOGLE_STYLE_KEY, raising=False)
    backend = BackendConfig(name="m", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=GOOGLE_STYLE_KEY)
    with pytest.raises(ConfigError) as caught:
        resolve_api_key(backend)
    assert GOOGLE_STYLE_KEY not in str(caught.value)
    assert GOOGLE_STYLE_KEY not in str(backend.public_settings())
    spec = BackendSpec(base_url="http://127.0.0.1:9/v1", api_key_env=GOOGLE_STYLE_KEY)
    with pytest.raises(ConfigError) as caught:
        spec.api_key("cloud")
    assert GOOGLE_STYLE_KEY not in str(caught.value)
