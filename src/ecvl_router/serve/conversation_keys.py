"""A conversation's key: the name under which the gateway keeps the route of a multi-turn conversation.

The key is the first of these that the request has (``stickiness.keys`` chooses and orders them):

- ``header``: the ``X-ECVL-Session`` header;
- ``metadata``: ``metadata.session_id`` in the body (OpenAI's free-form ``metadata`` object);
- ``user``: the body's ``user`` field (all of that end user's conversations then share one route);
- ``history``: a hash of the conversation's earlier messages.

Explicit keys (the first three) name the conversation on every turn, so the route is kept under that one
key. A history key changes with every turn: after turn k the gateway keeps the route under the hash of
turn k's messages followed by its answer, and turn k+1, which sends exactly those messages again (and then
its new ones), looks up the hash of its messages up to and including the last assistant message. Messages
are hashed in a canonical form, so the forms a client may send back the same answer in (a string or one
text part, with or without null fields, with or without invisible markers) hash alike. Values are hashed
before use: no session id, user id or message text is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ecvl_router.openai_http.sse import EVENT_END, event_data, json_object
from ecvl_router.serve.config import SessionKey
from ecvl_router.serve.conversation import unmarked
from ecvl_router.serve.errors import bad_request

SESSION_HEADER = "X-ECVL-Session"
METADATA_KEY = "session_id"
"""The key of the body's ``metadata`` object naming the conversation."""
_DIGITS = 32  # hex digits of sha256 kept in a key: 128 bits


@dataclass
class ConversationKey:
    """Where a request's conversation keeps its route: the key to look up, and the keys to keep it under after."""

    source: SessionKey | None
    """Which request field named the conversation; None: none did (its route is not kept)."""
    lookup: str | None
    """The key of the conversation's route so far; None: a new conversation, nothing to look up."""
    _history: Any = field(default=None, repr=False)  # the running hash of every message of the request

    def after(self, answers: Sequence[dict[str, Any]]) -> list[str]:
        """The keys the next turn looks up, given this turn's ``answers`` (the assistant message of each choice)."""
        if self._history is None:
            return [self.lookup] if self.lookup is not None else []
        keys = []
        for answer in answers:
            digest = self._history.copy()
            digest.update(canonical_message(answer))
            keys.append("history:" + digest.hexdigest()[:_DIGITS])
        return keys

    @property
    def needs_answers(self) -> bool:
        """Whether :meth:`after` needs the answers (a history key) rather than nothing (an explicit key)."""
        return self._history is not None


def conversation_key(body: dict[str, Any], session_header: str | None, sources: Sequence[SessionKey]) -> ConversationKey:
    """The key of the conversation of a validated request ``body``; a 400 when ``metadata`` is malformed."""
    for source in sources:
        if source == "history":
            return _history_key(body["messages"])
        value = _explicit(body, session_header, source)
        if value:
            namespace = "user" if source == "user" else "session"  # the header and metadata name the same thing
            return ConversationKey(source, f"{namespace}:{_digest(value.encode())}")
    return ConversationKey(None, None)


def _explicit(body: dict[str, Any], session_header: str | None, source: SessionKey) -> str | None:
    if source == "header":
        return session_header.strip() if session_header else None
    if source == "user":
        user = body.get("user")
        return user.strip() if isinstance(user, str) else None
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad_request("'metadata' must be an object", param="metadata", code="invalid_parameter")
    value = metadata.get(METADATA_KEY)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'metadata.{METADATA_KEY}' must be a string", param=f"metadata.{METADATA_KEY}", code="invalid_parameter")
    return value.strip() if value else None


def _history_key(messages: list[dict[str, Any]]) -> ConversationKey:
    last_answer = max((i for i, message in enumerate(messages) if message.get("role") == "assistant"), default=None)
    history = hashlib.sha256()
    lookup = None
    for index, message in enumerate(messages):
        history.update(canonical_message(message))
        if index == last_answer:
            lookup = "history:" + history.hexdigest()[:_DIGITS]
    return ConversationKey("history", lookup, history)


def canonical_message(message: dict[str, Any]) -> bytes:
    """One message as hashed: role, name, content parts (markers removed, empty texts dropped, images by the hash of
    their URL), tool calls."""
    content = message.get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content if isinstance(content, list) else []
    shown: list[Any] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = unmarked(part.get(kind) or "")
            if text:
                shown.append([kind, text])
        elif kind == "image_url":  # by the hash of its URL: a data URI is large, and hashing it is cheaper than quoting it
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            shown.append([kind, _digest(url.encode()) if isinstance(url, str) else url])
        else:
            shown.append([kind, part])
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        shown.append(["refusal", refusal])
    calls = [_call(call) for call in message.get("tool_calls") or () if isinstance(call, dict)]
    record = [message.get("role"), message.get("name"), shown, calls, message.get("tool_call_id")]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _call(call: dict[str, Any]) -> list[str | None]:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    return [call.get("id") or None, _text(function.get("name")), _text(function.get("arguments"))]


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()[:_DIGITS]


@dataclass
class _StreamedAnswer:
    content: str = ""
    refusal: str = ""
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        calls = [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for _, call in sorted(self.tool_calls.items())
        ]
        return {"role": "assistant", "content": self.content or None, "refusal": self.refusal or None, "tool_calls": calls or None}


class AnswerTranscript:
    """The assistant messages of a streamed answer, put together from its SSE events as a client does."""

    def __init__(self) -> None:
        self._buffer = b""
        self._answers: dict[int, _StreamedAnswer] = {}
        self.done = False

    def feed(self, chunk: bytes) -> bool:
        """Read ``chunk`` of the stream; whether the stream's closing ``[DONE]`` has been read."""
        self._buffer += chunk
        while (end := EVENT_END.search(self._buffer)) is not None:
            event, self._buffer = self._buffer[: end.start()], self._buffer[end.end() :]
            data = event_data(event)
            if data == b"[DONE]":
                self.done = True
            elif data:
                self._add(json_object(data))
        return self.done

    def messages(self) -> list[dict[str, Any]]:
        """One assistant message per choice, in choice order."""
        return [answer.message() for _, answer in sorted(self._answers.items())]

    def _add(self, document: dict[str, Any] | None) -> None:
        choices = document.get("choices") if document is not None else None
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
                continue
            index = choice.get("index")
            answer = self._answers.setdefault(index if isinstance(index, int) else 0, _StreamedAnswer())
            delta = choice["delta"]
            answer.content += _text(delta.get("content"))
            answer.refusal += _text(delta.get("refusal"))
            for call in delta.get("tool_calls") or ():
                if not isinstance(call, dict):
                    continue
                position = call.get("index")
                entry = answer.tool_calls.setdefault(position if isinstance(position, int) else 0, {"id": "", "name": "", "arguments": ""})
                entry["id"] = _text(call.get("id")) or entry["id"]
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                entry["name"] += _text(function.get("name"))
                entry["arguments"] += _text(function.get("arguments"))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
