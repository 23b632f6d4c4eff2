"""Retries with exponential backoff and jitter, honouring the server's Retry-After."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from ecvl_router.collect.config import RetryPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CallError(Exception):
    """A failed call to a backend: a short ``kind``, a message free of secrets, and whether to try again."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.attempts = 1


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): half the capped exponential step plus jitter."""
    step = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    return step / 2 + (rng or random).uniform(0, step / 2)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait a server asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        value = lowered.get("retry-after")
        if value is None:
            return None
        if value.strip().replace(".", "", 1).isdigit():
            return float(value)
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


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
