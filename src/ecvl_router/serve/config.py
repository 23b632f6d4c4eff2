"""Gateway configuration: the router bundle, the two backends, client keys, limits and policies (YAML, pydantic).

Secrets never live in the file: a backend names the environment variable holding its API key
(``api_key_env``), and the client keys come from the variable named by ``api_keys_env``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ecvl_router.features.onnx_cache import EncoderEngine
from ecvl_router.config import STRICT, ConfigError, check_variable_name, key_from_environment, keys_from_environment, read_yaml, validation_message
from ecvl_router.openai_http.retry import RetryPolicy

EXAMPLE_CONFIG_FILE = "gateway.example.yaml"
SERVED_MODEL = "ecvl-router"
"""The model id clients ask for: ``ecvl-router`` (default scenario) or ``ecvl-router:<scenario>``."""



class BackendSpec(BaseModel):
    """One OpenAI-compatible chat-completions endpoint the gateway forwards to."""

    model_config = STRICT

    base_url: str = Field(description="endpoint root, e.g. http://127.0.0.1:8101/v1")
    model: str | None = Field(None, min_length=1, description="model id sent upstream; default: the bundle's model name")
    api_key_env: str | None = Field(None, description="NAME of the environment variable holding the API key")
    api_key_header: str = Field("Authorization", min_length=1, description="'Authorization' sends 'Bearer KEY'")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeout_s: float = Field(60.0, gt=0, description="a complete answer, or the gap between two streamed chunks")
    connect_timeout_s: float = Field(2.0, gt=0, description="how fast an unreachable backend is given up on")
    max_connections: int = Field(256, ge=1, description="open connections to this backend at most")
    retry: RetryPolicy = Field(
        default_factory=lambda: RetryPolicy(max_attempts=2, backoff_base_s=0.1, backoff_max_s=1.0, max_retry_after_s=2.0)
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _key_variable(cls, value: str | None) -> str | None:
        return check_variable_name(value)

    def api_key(self, role: str) -> str | None:
        """The key from the environment (None when the backend needs none); ConfigError names ``role``."""
        return key_from_environment(self.api_key_env, f"{role}.api_key_env")


class Limits(BaseModel):
    """Bounds on what one request may carry."""

    model_config = STRICT

    max_body_bytes: int = Field(20 * 2**20, ge=1024, description="request body")
    max_image_bytes: int = Field(10 * 2**20, ge=1024, description="one image, decoded")
    max_image_pixels: int = Field(25_000_000, ge=1, description="width x height of one image (decompression bombs)")
    max_images: int = Field(8, ge=0, description="images in one request, all turns together")
    max_messages: int = Field(256, ge=1, description="messages in one request")


class ImagePolicy(BaseModel):
    """How ``image_url`` parts with http(s) URLs are fetched (once, by the gateway, then sent on as data URIs)."""

    model_config = STRICT

    fetch_urls: bool = Field(True, description="false: only data URIs are accepted")
    allow_private_networks: bool = Field(False, description="fetch from private, loopback and link-local addresses")
    fetch_timeout_s: float = Field(5.0, gt=0, description="the whole download, redirects included")
    max_redirects: int = Field(3, ge=0)


class FallbackPolicy(BaseModel):
    """Which backend answers when the chosen one fails (after its retries)."""

    model_config = STRICT

    edge_to_cloud: bool = Field(True, description="never for a scenario with cloud_allowed: false")
    cloud_to_edge: bool = True


SessionKey = Literal["header", "metadata", "user", "history"]
"""Where a conversation's key comes from: ``X-ECVL-Session``, ``metadata.session_id``, ``user``, or its earlier messages."""


class StickinessPolicy(BaseModel):
    """Multi-turn routing: a conversation stays on the backend that answered its first turn.

    The gateway keeps each conversation's route, under a key taken from the request (the first of ``keys`` the
    request has), in memory (one process) or in Redis (shared by workers and replicas). Invisible markers in
    the answers are an opt-in for clients that can send nothing else.
    """

    model_config = STRICT

    edge: bool = Field(True, description="a conversation the edge answered first stays on the edge")
    cloud: bool = Field(True, description="a conversation the cloud answered first stays on the cloud")
    keys: list[SessionKey] = Field(
        default_factory=lambda: ["header", "metadata", "user", "history"],
        description="where a conversation's key comes from, first found first; [] keeps no routes",
    )
    markers: bool = Field(False, description="also mark every answer with an invisible marker naming its backend")
    store: Literal["memory", "redis"] = Field("memory", description="memory: this process only; redis: shared")
    ttl_s: float = Field(3600.0, gt=0, description="a route is forgotten this long after its conversation's last turn")
    max_entries: int = Field(100_000, ge=1, description="routes kept in memory at most (store: memory), least recent out first")
    url: str | None = Field(None, description="store: redis: redis://host:port/db, rediss://... or unix://...")
    password_env: str | None = Field(None, description="NAME of the environment variable holding the Redis password")
    key_prefix: str = Field("ecvl-router:route:", min_length=1, description="prefix of the gateway's Redis keys")
    timeout_s: float = Field(0.25, gt=0, description="one Redis call (connecting included) at most")
    retry_after_s: float = Field(1.0, ge=0, description="after a failed Redis call, how long requests skip the store")

    @field_validator("keys")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each key source may appear once")
        if "history" in value[:-1]:
            raise ValueError("history must come last: every request has a history, so no source after it is ever used")
        return value

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if url.password:
            raise ValueError("must not hold a password: name the variable holding it in password_env")
        return value

    @field_validator("password_env")
    @classmethod
    def _password_variable(cls, value: str | None) -> str | None:
        return check_variable_name(value)

    @model_validator(mode="after")
    def _store_settings(self) -> Self:
        if self.store == "redis" and self.url is None:
            raise ValueError("store: redis needs url (e.g. redis://127.0.0.1:6379/0)")
        if self.store == "memory" and self.url is not None:
            raise ValueError("url is set, but store is memory: set store: redis to use it")
        return self

    def sticky(self, route: str) -> bool:
        """Whether conversations ``route`` answered first stay on it."""
        return self.edge if route == "edge" else self.cloud

    def marks(self, route: str) -> bool:
        """Whether answers of ``route`` carry the invisible marker."""
        return self.markers and self.sticky(route)

    def password(self) -> str | None:
        """The Redis password from the environment (None when no variable is named); ConfigError when it is unset."""
        return key_from_environment(self.password_env, "stickiness.password_env")


class BatchingPolicy(BaseModel):
    """Dynamic micro-batching of routing decisions: concurrent requests share one pass of the encoders and router."""

    model_config = STRICT

    max_batch: int = Field(16, ge=1, le=1024, description="decisions in one batch at most")
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="how long a batch of several waits to fill; a request alone never waits")
    in_flight: int = Field(2, ge=1, le=8, description="batches computed at once: the next one starts while one is finished")


class EmbeddingCachePolicy(BaseModel):
    """The in-memory LRU cache of text and image embeddings (a conversation's image is encoded once)."""

    model_config = STRICT

    max_mb: float = Field(64.0, ge=0, description="size bound in MiB; 0 turns the cache off")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


class CapturePolicy(BaseModel):
    """Capture of a sampled share of routed requests, with the other backend's answer (shadow), for training data."""

    model_config = STRICT

    dir: Path = Field(description="capture folder (capture.db and images/); several gateway processes may share it")
    sample: float = Field(0.05, ge=0, le=1, description="share of the eligible routed requests captured")
    shadow: bool = Field(True, description="also ask the other backend, in the background, after the client has its answer")
    max_per_hour: int = Field(2000, ge=0, description="captures per gateway process in any hour, at most")
    shadow_queue: int = Field(256, ge=1, description="shadow calls waiting at most; the queue drops (and counts) more")
    shadow_concurrency: int = Field(4, ge=1, description="shadow calls in flight at most")


class DriftPolicy(BaseModel):
    """The drift metrics of ``/metrics``: the recent router decisions they are computed over."""

    model_config = STRICT

    window: int = Field(1000, ge=1, description="router decisions per scenario and process kept for the edge share and PSI of p")


class EncoderRuntimePolicy(BaseModel):
    """Where the encoders run: by default in ONNX Runtime, exported from the bundle's torch encoders on first start."""

    model_config = STRICT

    engine: EncoderEngine = Field("auto", description="auto: ONNX Runtime when installed and its export verifies, else torch; onnx; torch")
    cache_dir: Path | None = Field(None, description="folder of the exports; default: $ECVL_ROUTER_CACHE/onnx or ~/.cache/ecvl-router/onnx")


class GatewayConfig(BaseModel):
    """Everything ``ecvl-router serve`` needs; relative paths are taken relative to the YAML file."""

    model_config = STRICT

    bundle: Path = Field(description="run folder written by `ecvl-router train`")
    encoders: Path | None = Field(
        None, description="encoder settings YAML replacing the bundle's, e.g. the encoders.yaml of `ecvl-router export-encoders`"
    )
    edge: BackendSpec
    cloud: BackendSpec
    default_scenario: str | None = Field(None, description="for model 'ecvl-router'; default: the bundle's first")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys_env: str | None = Field(None, description="NAME of the variable holding the client keys, comma-separated")
    admin_keys_env: str | None = Field(None, description="NAME of the variable holding the admin keys (POST /admin/reload)")
    limits: Limits = Field(default_factory=Limits)
    images: ImagePolicy = Field(default_factory=ImagePolicy)
    fallback: FallbackPolicy = Field(default_factory=FallbackPolicy)
    stickiness: StickinessPolicy = Field(default_factory=StickinessPolicy)
    decision_log: Path | None = Field(None, description="JSON-lines file, one record per routed request")
    batching: BatchingPolicy = Field(default_factory=BatchingPolicy)
    embedding_cache: EmbeddingCachePolicy = Field(default_factory=EmbeddingCachePolicy)
    capture: CapturePolicy | None = Field(None, description="capture for training data and feedback; null: none")
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    encoder_runtime: EncoderRuntimePolicy = Field(default_factory=EncoderRuntimePolicy)
    study: dict[str, Any] | None = Field(
        None, description="an online study's section, read by ecvl_router.study (docs/study.md); the gateway ignores it"
    )

    @field_validator("api_keys_env", "admin_keys_env")
    @classmethod
    def _keys_variable(cls, value: str | None) -> str | None:
        return check_variable_name(value)

    def client_keys(self) -> tuple[str, ...]:
        """The accepted client keys (empty: no key required); ConfigError when the variable is unset or empty."""
        if self.api_keys_env is None:
            return ()
        return keys_from_environment(self.api_keys_env, "api_keys_env")

    def admin_keys(self) -> tuple[str, ...]:
        """The keys of the admin endpoints (empty: they are off); ConfigError when the variable is unset or empty."""
        if self.admin_keys_env is None:
            return ()
        return keys_from_environment(self.admin_keys_env, "admin_keys_env")

    def relative_to(self, folder: Path) -> Self:
        """A copy whose relative paths are resolved against ``folder``."""
        return self.model_copy(update=self.relative_paths(folder))

    def relative_paths(self, folder: Path) -> dict[str, Any]:
        """The path fields resolved against ``folder``, as a model_copy update (extended by subclasses)."""
        update: dict[str, Any] = {"bundle": folder / self.bundle}
        if self.encoders is not None:
            update["encoders"] = folder / self.encoders
        if self.decision_log is not None:
            update["decision_log"] = folder / self.decision_log
        if self.capture is not None:
            update["capture"] = self.capture.model_copy(update={"dir": folder / self.capture.dir})
        if self.encoder_runtime.cache_dir is not None:
            update["encoder_runtime"] = self.encoder_runtime.model_copy(update={"cache_dir": folder / self.encoder_runtime.cache_dir})
        return update


Config = TypeVar("Config", bound=GatewayConfig)


def load_gateway_config(path: Path, model: type[Config] = GatewayConfig) -> Config:  # type: ignore[assignment]
    """The configuration in a YAML file, as ``model``; raises ConfigError naming the file and each bad field."""
    path = Path(path)
    document = read_yaml(path)
    try:
        config = model.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    return config.relative_to(path.parent)


def example_config() -> str:
    """The commented example configuration shipped with the package."""
    return resources.files("ecvl_router.serve").joinpath(EXAMPLE_CONFIG_FILE).read_text(encoding="utf-8")
