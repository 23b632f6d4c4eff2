"""Backend and judge configuration: OpenAI-compatible endpoints described in YAML, validated with pydantic.

A backend names the environment variable that holds its API key (``api_key_env``), never the key itself;
the key is read from the environment when a run starts and goes nowhere but the request header.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ecvl_router.config import (
    STRICT,
    ConfigError,
    check_variable_name,
    key_from_environment,
    read_yaml,
    shows_as_variable_name,
    validation_message,
)
from ecvl_router.openai_http.retry import RetryPolicy

DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 1024}
_RESERVED_PARAMS = {"model", "messages", "stream", "stream_options"}


class BackendConfig(BaseModel):
    """One model behind an OpenAI-compatible chat-completions endpoint."""

    model_config = STRICT

    name: str = Field(min_length=1, description="the model's name in the dataset")
    base_url: str = Field(description="endpoint root, e.g. http://localhost:8000/v1")
    model: str = Field(min_length=1, description="model id sent in the request")
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key")
    api_key_header: str = Field("Authorization", min_length=1, description="'Authorization' sends 'Bearer KEY'")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    query: dict[str, str] = Field(default_factory=dict, description="extra query parameters, e.g. api-version")
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(120.0, gt=0, description="limit for one complete request")
    params: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_PARAMS))
    multimodal: bool = Field(True, description="send the item's image; text-only backends get the question alone")
    stream: bool = Field(False, description="stream the answer and record the time to first token")
    image_max_side: int | None = Field(1024, ge=16, description="downscale images so the longest side fits")
    system_prompt: str | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return check_variable_name(value)

    @field_validator("params")
    @classmethod
    def _merge_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(_RESERVED_PARAMS & set(value))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} are set by ecvl-router (use the 'model' and 'stream' fields)")
        merged = {**DEFAULT_PARAMS, **value}
        return {key: item for key, item in merged.items() if item is not None}

    def public_settings(self) -> dict[str, Any]:
        """The settings worth recording in a manifest: no key, and header names without their values."""
        settings = self.model_dump(exclude={"headers"})
        settings["headers"] = sorted(self.headers)
        if self.api_key_env is not None and not shows_as_variable_name(self.api_key_env):
            settings["api_key_env"] = "***"  # it could be a key pasted in place of a variable name
        return settings


class JudgeConfig(BackendConfig):
    """The LLM judge: a backend plus its score scale and, optionally, its own prompt template."""

    name: str | None = Field(None, description="defaults to the model id")  # type: ignore[assignment]
    score_min: float = 1
    score_max: float = 10
    template: Path | None = Field(None, description="prompt template file; default: the paper's 1-10 rubric")

    @model_validator(mode="after")
    def _defaults(self) -> JudgeConfig:
        if self.name is None:
            self.name = self.model
        if self.score_max <= self.score_min:
            raise ValueError(f"score_max ({self.score_max:g}) must exceed score_min ({self.score_min:g})")
        return self


class _ModelsFile(BaseModel):
    model_config = STRICT

    models: list[BackendConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> _ModelsFile:
        seen: set[str] = set()
        for index, backend in enumerate(self.models):
            if backend.name in seen:
                raise ValueError(f"models[{index}].name: duplicate name {backend.name!r}")
            seen.add(backend.name)
        return self


def load_models_config(path: Path) -> list[BackendConfig]:
    """The backends of a ``models.yaml`` (a top-level ``models:`` list); raises ConfigError naming file and field."""
    document = read_yaml(path)
    try:
        return _ModelsFile.model_validate(document).models
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None


def load_judge_config(path: Path) -> JudgeConfig:
    """The judge of a ``judge.yaml`` (its fields at top level or under ``judge:``); a relative template path
    is taken relative to the YAML file."""
    path = Path(path)
    document = read_yaml(path)
    if isinstance(document, dict) and set(document) == {"judge"}:
        document = document["judge"]
    try:
        config = JudgeConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    if config.template is not None and not config.template.is_absolute():
        config.template = path.parent / config.template
    return config


def resolve_api_key(config: BackendConfig) -> str | None:
    """The backend's API key from its environment variable (None when it needs none)."""
    return key_from_environment(config.api_key_env, f"api_key_env of {config.name!r}")
