"""Backend and judge configuration: OpenAI-compatible endpoints described in YAML, validated with pydantic.

A backend names the environment variable that holds its API key (``api_key_env``), never the key itself;
the key is read from the environment when a run starts and goes nowhere but the request header.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 1024}
_RESERVED_PARAMS = {"model", "messages", "stream", "stream_options"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ConfigError(ValueError):
    """A configuration file or setting is invalid; the message names the file and the field."""


class RetryPolicy(BaseModel):
    """When and how long to wait before another attempt (429, 5xx, timeouts and connection errors)."""

    model_config = _STRICT

    max_attempts: int = Field(5, ge=1, description="attempts per call, the first included")
    backoff_base_s: float = Field(0.5, gt=0, description="first backoff; doubles with every attempt")
    backoff_max_s: float = Field(30.0, gt=0, description="longest backoff")
    max_retry_after_s: float = Field(
        120.0, ge=0, description="longest Retry-After honoured; a server asking for more fails the call"
    )


class BackendConfig(BaseModel):
    """One model behind an OpenAI-compatible chat-completions endpoint."""

    model_config = _STRICT

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
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), not the key itself")
        return value

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


def _describe(error: dict[str, Any]) -> str:
    location = ""
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    return f"{location or '(top level)'}: {error['msg']}"


def read_yaml(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def validation_message(path: Path, exc: ValidationError) -> str:
    lines = [_describe(error) for error in exc.errors(include_input=False, include_url=False)]
    return f"{path}: {len(lines)} problem(s):\n" + "\n".join(f"  {line}" for line in lines)


class _ModelsFile(BaseModel):
    model_config = _STRICT

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


def key_from_environment(variable: str | None, owner: str) -> str | None:
    """The API key held in environment ``variable`` (None when no variable is named); ConfigError names ``owner``."""
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise ConfigError(f"environment variable {variable} ({owner}) is not set")
    return key


def resolve_api_key(config: BackendConfig) -> str | None:
    """The backend's API key from its environment variable (None when it needs none)."""
    return key_from_environment(config.api_key_env, f"api_key_env of {config.name!r}")
