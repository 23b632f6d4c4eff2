"""Errors the gateway answers with, in the OpenAI error format."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A request the gateway cannot serve: an HTTP status and an OpenAI-style error body.

    ``param`` names the offending field (``messages[1].content[0].image_url.url``) where there is one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = "invalid_request") -> GatewayError:
    """A 400 for a request the client must fix."""
    return GatewayError(400, message, param=param, code=code)
