"""Chat-completion requests: JSON parsing, validation with errors that name the field, scenario, routed query.

The request body is kept as the client sent it (unknown fields included) so that it can be forwarded
faithfully; validation only checks what the gateway relies on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ecvl_router.serve.config import SERVED_MODEL, Limits
from ecvl_router.serve.errors import bad_request

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_PART_TYPES = {
    "user": ("text", "image_url"),
    "assistant": ("text", "refusal"),
}
_TEXT_ONLY = ("text",)


@dataclass
class ImagePart:
    """An ``image_url`` part: where it is (for errors) and the dict whose ``url`` the gateway may rewrite."""

    where: str
    image_url: dict[str, Any]
    last_turn: bool

    @property
    def url(self) -> str:
        return self.image_url["url"]


@dataclass
class ChatRequest:
    """A validated request: the body to forward, its scenario, and the query the router decides on."""

    body: dict[str, Any]
    scenario: str
    stream: bool
    question: str
    images: list[ImagePart]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; every way of failing is a 400."""
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object", code="invalid_json")
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", code="invalid_json") from None
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply", code="invalid_json") from None
    if not isinstance(document, dict):
        raise bad_request(f"the request body must be a JSON object, not {_kind(document)}", code="invalid_json")
    return document


def parse_chat_request(
    body: dict[str, Any],
    *,
    scenarios: Sequence[str],
    default_scenario: str,
    scenario_header: str | None,
    limits: Limits,
) -> ChatRequest:
    """Validate ``body`` and pick its scenario; raises GatewayError (4xx) naming the offending field."""
    scenario = resolve_scenario(body.get("model"), scenario_header, scenarios, default_scenario)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request(f"'stream' must be true or false, not {_kind(stream)}", param="stream")
    check_sampling(body)
    messages = body.get("messages")
    if messages is None:
        raise bad_request("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array of message objects", param="messages")
    if len(messages) > limits.max_messages:
        raise bad_request(f"{len(messages)} messages exceed the limit of {limits.max_messages}", param="messages", code="too_many_messages")
    last_user = max((i for i, message in enumerate(messages) if isinstance(message, dict) and message.get("role") == "user"), default=None)
    images: list[ImagePart] = []
    for index, message in enumerate(messages):
        images += _check_message(message, f"messages[{index}]", last_turn=index == last_user)
    if last_user is None:
        raise bad_request("the conversation has no user message to route", param="messages", code="no_user_message")
    if len(images) > limits.max_images:
        raise bad_request(f"{len(images)} images exceed the limit of {limits.max_images} per request", param="messages", code="too_many_images")
    return ChatRequest(
        body=body,
        scenario=scenario,
        stream=bool(stream),
        question=text_of(messages[last_user]["content"]),
        images=images,
    )


def _number(low: float, high: float) -> Callable[[Any], bool]:
    return lambda value: _is_number(value) and low <= value <= high


def _integer(low: int, high: int | None = None) -> Callable[[Any], bool]:
    return lambda value: _is_integer(value) and value >= low and (high is None or value <= high)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stop(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and 1 <= len(value) <= 4 and all(isinstance(item, str) for item in value)


def _logit_bias(value: Any) -> bool:
    return isinstance(value, dict) and all(_number(-100, 100)(bias) for bias in value.values())


SAMPLING_PARAMETERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "n": (_integer(1, 128), "an integer from 1 to 128"),
    "max_tokens": (_integer(1), "a positive integer"),
    "max_completion_tokens": (_integer(1), "a positive integer"),
    "stop": (_stop, "a string or an array of 1 to 4 strings"),
    "seed": (_is_integer, "an integer"),
    "presence_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "logprobs": (lambda value: isinstance(value, bool), "true or false"),
    "top_logprobs": (_integer(0, 20), "an integer from 0 to 20"),
    "logit_bias": (_logit_bias, "an object mapping token ids to numbers from -100 to 100"),
    "user": (lambda value: isinstance(value, str), "a string"),
    "stream_options": (lambda value: isinstance(value, dict), "an object"),
    "response_format": (lambda value: isinstance(value, dict), "an object"),
    "parallel_tool_calls": (lambda value: isinstance(value, bool), "true or false"),
}
"""The OpenAI sampling parameters the gateway checks (type and range) before anything is sent on; null is allowed."""


def check_sampling(body: dict[str, Any]) -> None:
    """A 400 naming the first sampling parameter of ``body`` that is of the wrong type or out of range."""
    for name, (valid, expected) in SAMPLING_PARAMETERS.items():
        value = body.get(name)
        if value is not None and not valid(value):
            raise bad_request(f"'{name}' must be {expected}, not {_shown_value(value)}", param=name, code="invalid_parameter")


def resolve_scenario(model: Any, header: str | None, scenarios: Sequence[str], default: str) -> str:
    """The scenario named by ``model`` (``ecvl-router[:<scenario>]``) or the ``X-ECVL-Scenario`` header."""
    if model is None:
        raise bad_request(f"'model' is required: use {SERVED_MODEL!r} or '{SERVED_MODEL}:<scenario>'", param="model")
    if not isinstance(model, str):
        raise bad_request(f"'model' must be a string, not {_kind(model)}", param="model")
    known = ", ".join(scenarios)
    header = header.strip() if header is not None else None
    if model == SERVED_MODEL:
        name, param = header or default, ("X-ECVL-Scenario" if header else "model")
    elif model.startswith(SERVED_MODEL + ":"):
        name, param = model[len(SERVED_MODEL) + 1 :], "model"
        if header and header != name:
            raise bad_request(f"model {model!r} and header X-ECVL-Scenario {header!r} name different scenarios", param="model", code="scenario_conflict")
    else:
        raise bad_request(
            f"model {model!r} is not served here; use {SERVED_MODEL!r} (scenario {default!r}) or "
            f"'{SERVED_MODEL}:<scenario>' with one of: {known}",
            param="model",
            code="model_not_found",
        )
    if name not in scenarios:
        raise bad_request(f"unknown scenario {name!r}; known scenarios: {known}", param=param, code="unknown_scenario")
    return name


def _check_message(message: Any, where: str, *, last_turn: bool) -> list[ImagePart]:
    if not isinstance(message, dict):
        raise bad_request(f"{where} must be a message object, not {_kind(message)}", param=where)
    role = message.get("role")
    if role is None:
        raise bad_request(f"{where}.role is required", param=f"{where}.role")
    if role not in ROLES:
        raise bad_request(f"{where}.role {_shown(role)} is not one of: {', '.join(ROLES)}", param=f"{where}.role")
    content = message.get("content")
    if content is None:
        if role == "assistant":  # an assistant turn may carry only tool calls
            return []
        raise bad_request(f"{where}.content is required for a {role} message", param=f"{where}.content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or an array of content parts, not {_kind(content)}", param=f"{where}.content")
    allowed = _PART_TYPES.get(role, _TEXT_ONLY)
    images = []
    for index, part in enumerate(content):
        path = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise bad_request(f"{path} must be a content part object, not {_kind(part)}", param=path)
        kind = part.get("type")
        if kind not in allowed:
            raise bad_request(f"{path}.type {_shown(kind)} is not supported in a {role} message; use {' or '.join(allowed)}", param=f"{path}.type")
        if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
            raise bad_request(f"{path}.{kind} must be a string", param=f"{path}.{kind}")
        if kind == "image_url":
            image_url = part.get("image_url")
            if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str) or not image_url["url"]:
                raise bad_request(f"{path}.image_url must be an object with a non-empty 'url' string", param=f"{path}.image_url")
            images.append(ImagePart(f"{path}.image_url.url", image_url, last_turn))
    return images


def text_of(content: str | list[dict[str, Any]]) -> str:
    """The text of a message's content: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part.get("type") == "text")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _kind(value)


def _shown_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if _is_number(value):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return _kind(value)
