"""The shared OpenAI-HTTP pieces: redaction before excerpting, status classification."""

from __future__ import annotations

import httpx
import pytest

from ecvl_router.openai_http.errors import EXCERPT_CHARS, excerpt, status_error, transport_error

KEY = "sk-live-0123456789abcdefghijKLMNOPQRSTUV"


def _error_body(offset: int, length: int = 2 * EXCERPT_CHARS) -> str:
    filler = "x" * length
    return filler[:offset] + KEY + filler[offset:]


@pytest.mark.parametrize("offset", range(0, 2 * EXCERPT_CHARS + 1))
def test_no_piece_of_the_key_survives_an_excerpt_wherever_the_key_sits(offset: int) -> None:
    body = _error_body(offset)
    error = status_error(httpx.Response(401, text=body), KEY)
    kept = error.message
    for size in range(6, len(KEY) + 1):  # no 6-character run of the key, wherever the cut fell
        assert not any(KEY[start : start + size] in kept for start in range(len(KEY) - size + 1))
    assert kept.startswith("HTTP 401: ")
    assert excerpt(body, KEY) in kept


def test_the_excerpt_keeps_the_limit_after_redaction() -> None:
    assert excerpt("a" * 10 + KEY + "b" * 1000, KEY) == "a" * 10 + "***" + "b" * (EXCERPT_CHARS - 13)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(400, "http_error", False), (401, "auth", False), (403, "auth", False), (408, "timeout", True),
     (422, "http_error", False), (429, "rate_limited", True), (500, "server_error", True), (503, "server_error", True)],
)
def test_statuses_are_classified_once(status: int, kind: str, retryable: bool) -> None:
    error = status_error(httpx.Response(status, headers={"Retry-After": "2"}), None)
    assert (error.kind, error.retryable, error.status) == (kind, retryable, status)
    assert error.retry_after_s == (2 if retryable else None)


def test_a_transport_error_is_redacted() -> None:
    error = transport_error(httpx.ConnectError(f"refused for {KEY}"), KEY)
    assert KEY not in error.message and error.retryable and error.kind == "connection"
