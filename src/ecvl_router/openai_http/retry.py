"""Retries with exponential backoff and jitter, honouring the server's Retry-After."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ecvl_router.openai_http.errors import CallError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """When and how long to wait before another attempt (408, 429, 5xx, timeouts and connection errors)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    max_attempts: int = Field(5, ge=1, description="attempts per call, the first included")
    backoff_base_s: float = Field(0.5, gt=0, description="first backoff; doubles with every attempt")
    backoff_max_s: float = Field(30.0, gt=0, description="longest backoff")
    max_retry_after_s: float = Field(
        120.0, ge=0, description="longest Retry-After honoured; a server asking for more fails the call"
    )


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): half the capped exponential step plus jitter."""
    step = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    return step / 2 + (rng or random).uniform(0, step / 2)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Run ``call`` until it succeeds or fails for good; returns its result and the number of attempts.

    The final CallError carries the number of attempts made in ``attempts``.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return await call(), attempt
        except CallError as error:
            error.attempts = attempt
            if not error.retryable or attempt == policy.max_attempts:
                raise
            delay = backoff_delay(attempt, policy, rng)
            if error.retry_after_s is not None:
                if error.retry_after_s > policy.max_retry_after_s:
                    error.message += (
                        f" (server asked to wait {error.retry_after_s:g} s, more than max_retry_after_s "
                        f"{policy.max_retry_after_s:g})"
                    )
                    raise
                delay = error.retry_after_s
            logger.info("attempt %d failed (%s: %s); retrying in %.2f s", attempt, error.kind, error.message, delay)
            await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
