"""The routing gateway: an OpenAI-compatible server that sends each request to the edge or the cloud model.

``ecvl-router serve --config gateway.yaml`` runs it; :class:`Gateway` is its core (also used by
``ecvl_router.RouterClient``), ``ecvl_router.serve.app.create_app`` its FastAPI app, and
``ecvl_router.serve.backend_sim`` a simulated backend for trying it offline.
"""

from ecvl_router.serve.config import (
    SERVED_MODEL,
    BackendSpec,
    FallbackPolicy,
    GatewayConfig,
    ImagePolicy,
    Limits,
    StickinessPolicy,
    example_config,
    load_gateway_config,
)
from ecvl_router.serve.errors import GatewayError
from ecvl_router.serve.gateway import Gateway, Outcome, Reply
from ecvl_router.serve.routing import Decision, QueryRouter

__all__ = [
    "SERVED_MODEL",
    "BackendSpec",
    "Decision",
    "FallbackPolicy",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "ImagePolicy",
    "Limits",
    "Outcome",
    "QueryRouter",
    "Reply",
    "StickinessPolicy",
    "example_config",
    "load_gateway_config",
]
