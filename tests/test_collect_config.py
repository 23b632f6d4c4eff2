"""Backend and judge configuration: validation naming the field, defaults, keys kept out of messages."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from ecvl_router.collect.config import load_judge_config, load_models_config, resolve_api_key
from ecvl_router.config import ConfigError
from ecvl_router.openai_http.retry import RetryPolicy
from ecvl_router.openai_http.errors import retry_after_seconds
from ecvl_router.openai_http.retry import backoff_delay
from ecvl_router.collect.shard import Shard


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_models_yaml_defaults_and_merged_params(tmp_path: Path) -> None:
    path = write(
        tmp_path / "models.yaml",
        """
models:
  - name: small
    base_url: http://localhost:8000/v1/
    model: org/small-vlm
    params: {top_p: 0.9, max_tokens: 256}
  - name: large
    base_url: https://api.example.com/v1
    model: large-vlm
    api_key_env: EXAMPLE_API_KEY
    multimodal: false
    stream: true
    max_concurrency: 32
""",
    )
    small, large = load_models_config(path)
    assert small.base_url == "http://localhost:8000/v1"
    assert small.params == {"temperature": 0, "max_tokens": 256, "top_p": 0.9}
    assert small.max_concurrency == 8 and small.image_max_side == 1024 and small.multimodal and not small.stream
    assert large.params == {"temperature": 0, "max_tokens": 1024}
    assert large.api_key_env == "EXAMPLE_API_KEY" and not large.multimodal and large.stream


def test_params_set_to_null_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "m.yaml", "models: [{name: a, base_url: 'http://h/v1', model: m, params: {max_tokens: null, max_completion_tokens: 50}}]")
    assert load_models_config(path)[0].params == {"temperature": 0, "max_completion_tokens": 50}


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("{name: a, base_url: 'http://h/v1', model: m, max_concurrency: 0}", "models[0].max_concurrency"),
        ("{name: a, base_url: 'ftp://h', model: m}", "models[0].base_url: Value error, must be an http"),
        ("{name: a, base_url: 'http://h/v1', model: m, temprature: 0}", "models[0].temprature: Extra inputs are not permitted"),
        ("{name: a, base_url: 'http://h/v1'}", "models[0].model: Field required"),
        ("{name: a, base_url: 'http://h/v1', model: m, params: {stream: true}}", "models[0].params"),
        ("{name: a, base_url: 'http://h/v1', model: m, retry: {max_attempts: 0}}", "models[0].retry.max_attempts"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, entry: str, expected: str) -> None:
    path = write(tmp_path / "models.yaml", f"models:\n  - {entry}\n")
    with pytest.raises(ConfigError) as caught:
        load_models_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_duplicate_names_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "m.yaml", "models:\n  - {name: a, base_url: 'http://h/v1', model: m}\n  - {name: a, base_url: 'http://h/v1', model: n}\n")
    with pytest.raises(ConfigError, match="duplicate name 'a'"):
        load_models_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_models_config(tmp_path / "absent.yaml")


def test_a_key_pasted_into_api_key_env_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    secret = "sk-proj-THISISASECRETKEY1234"
    path = write(tmp_path / "m.yaml", f"models: [{{name: a, base_url: 'http://h/v1', model: m, api_key_env: '{secret}', bogus: '{secret}'}}]")
    with pytest.raises(ConfigError) as caught:
        load_models_config(path)
    assert "api_key_env" in str(caught.value) and "NAME of an environment variable" in str(caught.value)
    assert secret not in str(caught.value)


def test_resolve_api_key_names_the_variable_never_a_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (backend,) = load_models_config(write(tmp_path / "m.yaml", "models: [{name: a, base_url: 'http://h/v1', model: m, api_key_env: MY_KEY}]"))
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_KEY"):
        resolve_api_key(backend)
    monkeypatch.setenv("MY_KEY", "sk-value")
    assert resolve_api_key(backend) == "sk-value"
    assert "sk-value" not in str(backend.public_settings())


def test_public_settings_hold_header_names_only(tmp_path: Path) -> None:
    (backend,) = load_models_config(
        write(tmp_path / "m.yaml", "models: [{name: a, base_url: 'http://h/v1', model: m, headers: {X-Secret-Token: abc123}}]")
    )
    assert backend.public_settings()["headers"] == ["X-Secret-Token"]
    assert "abc123" not in str(backend.public_settings())


def test_judge_yaml_defaults_scale_and_relative_template(tmp_path: Path) -> None:
    path = write(tmp_path / "judge.yaml", "judge:\n  base_url: http://h/v1\n  model: big-judge\n  template: prompts/mine.txt\n")
    judge = load_judge_config(path)
    assert judge.name == "big-judge" and (judge.score_min, judge.score_max) == (1, 10)
    assert judge.template == tmp_path / "prompts" / "mine.txt"
    bad = write(tmp_path / "bad.yaml", "base_url: http://h/v1\nmodel: j\nscore_min: 5\nscore_max: 5\n")
    with pytest.raises(ConfigError, match="score_max"):
        load_judge_config(bad)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_base_s=1, backoff_max_s=8)
    rng = random.Random(0)
    for attempt, step in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 8)]:
        delays = [backoff_delay(attempt, policy, rng) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # jitter spreads the waits


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_seconds({"Retry-After": "3"}) == 3
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)}, now=now) == 30
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_shards_partition_ids_deterministically() -> None:
    ids = [f"item-{i}" for i in range(400)]
    shards = [Shard.parse(f"{i}/4") for i in range(4)]
    owners = [[shard.index for shard in shards if shard.contains(item)] for item in ids]
    assert all(len(owner) == 1 for owner in owners)
    sizes = [sum(owner == [i] for owner in owners) for i in range(4)]
    assert min(sizes) > 60  # roughly balanced
    assert Shard.parse(" 1 / 4 ").contains("item-7") == Shard(1, 4).contains("item-7")
    for text in ("4/4", "x/2", "1"):
        with pytest.raises(ValueError):
            Shard.parse(text)
