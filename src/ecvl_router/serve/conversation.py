"""Invisible markers naming who answered (opt-in, ``stickiness.markers``), and the Route type.

With markers on, every answer starts with a marker of three zero-width characters, one for the edge and
one for the cloud; a client that sends the conversation back (as chat clients do) thereby tells any gateway
process who answered its first turn, with no state kept anywhere. Markers are removed from the history
before any backend sees it. They change the answers' text, so they are off by default: the gateway keeps
conversations' routes itself (``stickiness``). A client that strips zero-width characters from messages
loses marker stickiness."""

from __future__ import annotations

from typing import Any, Literal

Route = Literal["edge", "cloud"]

CLOUD_MARKER = "\u2063\u200b\u2063"
"""INVISIBLE SEPARATOR, ZERO WIDTH SPACE, INVISIBLE SEPARATOR: the cloud answered."""
EDGE_MARKER = "\u2063\u200c\u2063"
"""INVISIBLE SEPARATOR, ZERO WIDTH NON-JOINER, INVISIBLE SEPARATOR: the edge answered."""
MARKERS: dict[Route, str] = {"edge": EDGE_MARKER, "cloud": CLOUD_MARKER}


def mark(text: str | None, route: Route) -> str:
    """``text`` with the marker of ``route`` in front."""
    return MARKERS[route] + (text or "")


def unmarked(text: str) -> str:
    """``text`` without any marker."""
    for marker in MARKERS.values():
        text = text.replace(marker, "")
    return text


def first_route(messages: list[dict[str, Any]]) -> Route | None:
    """The route named by the marker of the first marked assistant message (None: no marker in the history)."""
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for text in _texts(message.get("content")):
            for route, marker in MARKERS.items():
                if marker in text:
                    return route
    return None


def strip_markers(messages: list[dict[str, Any]]) -> None:
    """Remove every marker from the assistant messages, in place."""
    for message in messages:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = unmarked(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = unmarked(part["text"])


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []
