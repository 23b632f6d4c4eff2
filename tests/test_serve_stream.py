"""The SSE annotator: the first event gains the decision (and the cloud marker), the rest passes byte for byte."""

from __future__ import annotations

import json

from ecvl_router.serve.conversation import CLOUD_MARKER
from ecvl_router.serve.gateway import _StreamAnnotator

ECVL = {"route": "cloud", "p": 0.25, "tau": 0.5}


def _event(document: dict, newline: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(document).encode() + newline + newline


STREAM = (
    b": keep-alive comment\n\n"
    + _event({"id": "c1", "choices": [], "usage": None})
    + _event({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    + _event({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hello"}}]})
    + b"data: [DONE]\n\n"
)


def _run(chunks: list[bytes], marked: bool) -> bytes:
    annotator = _StreamAnnotator(ECVL, CLOUD_MARKER if marked else None)
    out = b"".join(chunk if annotator.done else annotator.feed(chunk) for chunk in chunks)
    return out + annotator.pending


def _events(stream: bytes) -> list[dict | str]:
    found = []
    for event in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in event.splitlines():
            if line.startswith(b"data:"):
                data = line[5:].strip()
                found.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return found


def test_first_event_carries_the_decision_and_first_delta_the_marker() -> None:
    events = _events(_run([STREAM], marked=True))
    assert events[0]["ecvl"] == ECVL and all("ecvl" not in e for e in events[1:-1])
    assert events[1]["choices"][0]["delta"] == {"role": "assistant", "content": CLOUD_MARKER}
    assert events[2]["choices"][0]["delta"] == {"content": "Hello"} and events[-1] == "[DONE]"


def test_split_anywhere_gives_the_same_stream() -> None:
    whole = _run([STREAM], marked=True)
    assert _run([STREAM[i : i + 1] for i in range(len(STREAM))], marked=True) == whole
    assert _run([STREAM[:37], STREAM[37:90], STREAM[90:]], marked=True) == whole


def test_unmarked_stream_is_untouched_after_the_first_event() -> None:
    out = _run([STREAM], marked=False)
    first_data = STREAM.index(b"data:")
    rest_start = STREAM.index(b"\n\n", first_data) + 2
    assert out.endswith(STREAM[rest_start:]) and out.startswith(b": keep-alive comment\n\n")
    assert _events(out)[0]["ecvl"] == ECVL


def test_crlf_events_and_done_first() -> None:
    crlf = _event({"id": "x", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}, b"\r\n")
    events = _events(_run([crlf], marked=True))
    assert events[0]["ecvl"] == ECVL and events[0]["choices"][0]["delta"]["content"] == CLOUD_MARKER + "Hi"
    assert _run([b"data: [DONE]\n\n"], marked=True) == b"data: [DONE]\n\n"
