"""Stateless multi-turn routing: an invisible marker at the start of every answer the cloud gave.

A client that sends the conversation back (as chat clients do) thereby tells the gateway that the cloud
has already answered it, and the gateway keeps the conversation there. The marker is three zero-width
characters; it is removed from the history before any backend sees it.
"""

from __future__ import annotations

from typing import Any

CLOUD_MARKER = "\u2063\u200b\u2063"
"""INVISIBLE SEPARATOR, ZERO WIDTH SPACE, INVISIBLE SEPARATOR."""


def mark(text: str | None) -> str:
    """``text`` with the cloud marker in front."""
    return CLOUD_MARKER + (text or "")


def answered_by_cloud(messages: list[dict[str, Any]]) -> bool:
    """Whether an assistant message of the history carries the cloud marker."""
    for message in messages:
        if message.get("role") == "assistant" and any(CLOUD_MARKER in text for text in _texts(message.get("content"))):
            return True
    return False


def strip_markers(messages: list[dict[str, Any]]) -> None:
    """Remove the cloud marker from the assistant messages, in place."""
    for message in messages:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = content.replace(CLOUD_MARKER, "")
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = part["text"].replace(CLOUD_MARKER, "")


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []
