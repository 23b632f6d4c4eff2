"""Reading the Server-Sent Events of an OpenAI-compatible chat-completions stream."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

EVENT_END = re.compile(rb"\r?\n\r?\n")
"""The blank line that ends an event."""


def event_data(event: bytes) -> bytes:
    """The payload of one event: its ``data:`` lines, joined."""
    return b"".join(line[5:].strip() for line in event.splitlines() if line.startswith(b"data:"))


async def data_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The non-empty data payloads of a byte stream, in order, without the closing ``[DONE]``."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while (end := EVENT_END.search(buffer)) is not None:
            event, buffer = buffer[: end.start()], buffer[end.end() :]
            data = event_data(event)
            if data and data != b"[DONE]":
                yield data


def json_object(data: bytes) -> dict[str, Any] | None:
    """A data payload parsed as a JSON object, or None when it is not one."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
