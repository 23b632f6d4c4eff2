"""Failed backend calls: one error type, secret redaction, and the mapping of HTTP statuses and transport errors.

Every text a backend sends back (an error body, a transport error's message) may echo the API key it was
called with; the key is replaced by ``***`` in the *whole* text before any excerpt is cut from it, so no cut
can leave a piece of the key behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

EXCERPT_CHARS = 300
"""How much of a backend's error body is kept in an error message."""
REDACTED = "***"
RETRYABLE_CLIENT_STATUSES = (408, 429)
"""The 4xx statuses worth another attempt (and a fallback): a timeout and rate limiting."""


class CallError(Exception):
    """A failed call to a backend: a short ``kind``, a message free of secrets, and whether to try again.

    ``status`` is the backend's HTTP status, or None when there was no answer.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.status = status
        self.attempts = 1


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, REDACTED) if secret else text


def excerpt(text: str, secret: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``text``, stripped, after ``secret`` was redacted from all of it."""
    return redact(text, secret)[:limit].strip()


def response_excerpt(response: httpx.Response, secret: str | None, limit: int = EXCERPT_CHARS) -> str:
    """An :func:`excerpt` of a read response's body ("" when it was not read or is not text)."""
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    return excerpt(text, secret, limit)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt: 408, 429 and 5xx."""
    return status in RETRYABLE_CLIENT_STATUSES or status >= 500


def status_error(response: httpx.Response, secret: str | None) -> CallError:
    """The CallError for an HTTP error status; its message holds a redacted excerpt of the body."""
    status = response.status_code
    body = response_excerpt(response, secret)
    message = f"HTTP {status}: {body}" if body else f"HTTP {status}"
    retryable = is_retryable_status(status)
    wait = retry_after_seconds(response.headers) if retryable else None
    kind = {408: "timeout", 429: "rate_limited", 401: "auth", 403: "auth"}.get(status, "server_error" if status >= 500 else "http_error")
    return CallError(kind, message, status=status, retryable=retryable, retry_after_s=wait)


def transport_error(exc: httpx.TransportError, secret: str | None) -> CallError:
    """The (retryable) CallError for a connection that failed before an answer came."""
    detail = redact(str(exc), secret) or type(exc).__name__
    return CallError("connection", f"{type(exc).__name__}: {detail}", retryable=True)


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
