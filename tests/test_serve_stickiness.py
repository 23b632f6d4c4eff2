"""Conversation stickiness: keys, hashes and route stores, then multi-turn conversations through the official
``openai`` client against gateways on 127.0.0.1 (backend-sim backends), with routes kept in memory and in a
real redis-server, Redis going down and coming back, and routes expiring.

The fast tests' bundle routes every ``quality`` query to the cloud and every ``speed`` query to the edge, so a
``speed`` turn answered by the cloud was kept there by its conversation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import openai
import pytest

from ecvl_router.serve.config import StickinessPolicy
from ecvl_router.serve.conversation import mark
from ecvl_router.serve.conversation_keys import AnswerTranscript, ConversationKey, canonical_message, conversation_key
from ecvl_router.serve.errors import GatewayError
from ecvl_router.serve.metrics import GatewayMetrics
from ecvl_router.serve.route_store import MemoryRouteStore, RouteStoreUnavailable
from ecvl_router.serve.stickiness import Stickiness, Turn
from tests.redis_support import redis_server  # noqa: F401
from tests.serve_support import CLOUD, EDGE, demo_data, tiny_bundle  # noqa: F401
from tests.test_serve_gateway import backend_sims, client_for, gateway_server, items, router, sims, sim_requests  # noqa: F401

ALL_KEYS = ["header", "metadata", "user", "history"]


# ---------------------------------------------------------------------- keys
def _key(body: dict, header: str | None = None, sources=ALL_KEYS) -> ConversationKey:
    return conversation_key({"model": "ecvl-router", "messages": [{"role": "user", "content": "hi"}], **body}, header, sources)


def test_explicit_keys_come_first_in_the_configured_order() -> None:
    everything = {"metadata": {"session_id": "m-1"}, "user": "u-1"}
    assert _key(everything, "h-1").source == "header"
    assert _key(everything, "  ").source == "metadata"  # a blank header names nothing
    assert _key({"user": "u-1", "metadata": {"other": "x"}}).source == "user"
    assert _key({}).source == "history"
    assert _key(everything, "h-1", ["user", "header"]).source == "user"
    assert _key({}, None, ["header", "user"]).source is None  # no history among the keys: nothing names it
    assert _key(everything, "h-1", []).source is None and _key(everything, "h-1", []).after([]) == []
    header, metadata, user = _key({}, "same"), _key({"metadata": {"session_id": "same"}}), _key({"user": "same"})
    assert header.lookup == metadata.lookup != user.lookup  # the header and metadata name the same conversation
    assert "same" not in header.lookup and header.after([]) == [header.lookup]  # values are hashed


@pytest.mark.parametrize(("metadata", "param"), [("x", "metadata"), ([1], "metadata"), ({"session_id": 5}, "metadata.session_id")])
def test_malformed_metadata_is_a_400_naming_it(metadata, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        _key({"metadata": metadata})
    assert caught.value.status == 400 and caught.value.param == param


def test_the_next_turn_looks_up_what_the_last_turn_kept() -> None:
    answer = {"role": "assistant", "content": "It is a cat."}
    turn_1 = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is it?"}]
    first = _key({"messages": turn_1})
    assert first.lookup is None  # a first turn has nothing to look up, whatever its system prompt
    kept = first.after([answer])
    forms = [  # the same answer, as clients send it back
        answer,
        {"role": "assistant", "content": [{"type": "text", "text": "It is a cat."}]},
        {"role": "assistant", "content": "It is a cat.", "refusal": None, "tool_calls": None, "annotations": [], "audio": None},
        {"role": "assistant", "content": mark("It is a cat.", "cloud")},
    ]
    for form in forms:
        second = _key({"messages": [*turn_1, form, {"role": "user", "content": "Sure?"}]})
        assert second.lookup in kept, form
    two_questions = _key({"messages": [*turn_1, answer, {"role": "user", "content": "Sure?"}, {"role": "user", "content": "Really?"}]})
    assert two_questions.lookup in kept
    edited = _key({"messages": [turn_1[0], {"role": "user", "content": "What is this?"}, answer, {"role": "user", "content": "Sure?"}]})
    other_answer = _key({"messages": [*turn_1, {"role": "assistant", "content": "A dog."}, {"role": "user", "content": "Sure?"}]})
    assert edited.lookup not in kept and other_answer.lookup not in kept


def test_tool_calls_and_choices_are_part_of_the_answer() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "cats"}'}}
    first = _key({"messages": [{"role": "user", "content": "Find cats."}]})
    answers = [{"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "assistant", "content": "No tool needed."}]
    kept = first.after(answers)
    assert len(set(kept)) == 2  # one key per choice: the client continues with any of them
    result = _key({"messages": [{"role": "user", "content": "Find cats."}, answers[0], {"role": "tool", "tool_call_id": "call_1", "content": "3 cats"}]})
    assert result.lookup == kept[0]  # a tool result is a next turn too


def _sse(*documents: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(document).encode() + b"\n\n" for document in documents) + b"data: [DONE]\n\n"


def test_a_streamed_answer_hashes_like_the_same_answer_whole() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "ecvl": {"route": "edge"}},
        {"choices": [{"index": 0, "delta": {"content": "It is "}}, {"index": 1, "delta": {"content": "A"}}]},
        {"choices": [{"index": 0, "delta": {"content": "a cat."}}, {"index": 1, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q":'}}]}}]},
        {"choices": [{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}}]},
        {"choices": [], "usage": {"completion_tokens": 4}},
    ]
    stream = _sse(*chunks)
    transcript = AnswerTranscript()
    for position in range(len(stream)):  # split anywhere, even inside an event
        assert not transcript.done
        transcript.feed(stream[position : position + 1])
    assert transcript.done
    whole = [
        {"role": "assistant", "content": "It is a cat."},
        {"role": "assistant", "content": "A", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": "x"}'}}]},
    ]
    assert [canonical_message(m) for m in transcript.messages()] == [canonical_message(m) for m in whole]


# ---------------------------------------------------------------------- stores and outages
def test_memory_store_is_a_bounded_lru_whose_routes_expire() -> None:
    now = [0.0]
    store = MemoryRouteStore(max_entries=2, ttl_s=10, timer=lambda: now[0])

    async def scenario() -> None:
        await store.set(["a", "b"], "cloud")
        assert await store.get("a") == "cloud"  # a is now the most recently used
        await store.set(["c"], "edge")
        assert await store.get("b") is None and await store.get("a") == "cloud" and len(store) == 2
        now[0] = 9.0
        await store.set(["a"], "cloud")  # a write restarts the time to live
        now[0] = 12.0
        assert await store.get("a") == "cloud" and await store.get("c") is None  # c was written at 0
        now[0] = 19.5
        assert await store.get("a") is None

    asyncio.run(scenario())


class _FailingStore:
    """A store whose every call fails, until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.routes: dict[str, str] = {}

    async def get(self, key: str):
        if not self.up:
            raise RouteStoreUnavailable("Redis: ConnectionError: refused")
        return self.routes.get(key)

    async def set(self, keys, route) -> None:
        if not self.up:
            raise RouteStoreUnavailable("Redis: ConnectionError: refused")
        self.routes.update(dict.fromkeys(keys, route))

    async def aclose(self) -> None:
        pass


def test_an_unavailable_store_costs_stickiness_and_is_logged_at_most_once_a_minute(caplog) -> None:
    metrics, store = GatewayMetrics(), _FailingStore()
    stickiness = Stickiness(StickinessPolicy(), metrics, store)

    async def turns() -> None:
        for _ in range(5):
            turn = Turn(_key({}, "s-1"))
            assert await stickiness.recall(turn) is None
            await stickiness.remember(turn, "cloud")
        store.up = True
        turn = Turn(_key({}, "s-1"))
        assert await stickiness.recall(turn) is None
        await stickiness.remember(turn, "cloud")
        assert await stickiness.recall(Turn(_key({}, "s-1"))) == "cloud"

    with caplog.at_level(logging.INFO, logger="ecvl_router.serve.stickiness"):
        asyncio.run(turns())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "routing without stickiness" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert metrics.route_store_unavailable.labels("lookup")._value.get() == 5
    assert metrics.route_store_unavailable.labels("store")._value.get() == 5


# ---------------------------------------------------------------------- conversations over HTTP
def _direct(server, model: str, messages: list) -> str:
    """What a backend answers to ``messages`` when asked directly."""
    backend = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    return backend.chat.completions.create(model=model, messages=messages).choices[0].message.content


def _metric(gateway, name: str) -> float:
    text = httpx.get(gateway.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _conversation(client: openai.OpenAI, servers, first_question: str) -> None:
    """Four turns: the first routed to the cloud (quality), the next three asked as speed (the edge, on their own),
    one of them streamed; each answer sent back in a different form. Each turn stays on the cloud, and every
    answer is the cloud's, byte for byte."""
    messages: list = [{"role": "user", "content": first_question}]
    edge_before = sim_requests(servers["edge"])
    first = client.chat.completions.create(model="ecvl-router:quality", messages=messages)
    assert first.ecvl["route"] == "cloud" and first.ecvl["sticky"] is False
    assert first.choices[0].message.content == _direct(servers["cloud"], CLOUD, messages)
    messages += [first.choices[0].message, {"role": "user", "content": "And why?"}]  # the openai message object itself

    chunks = list(client.chat.completions.create(model="ecvl-router:speed", messages=messages, stream=True))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert chunks[0].ecvl["route"] == "cloud" and chunks[0].ecvl["sticky"] is True and chunks[0].ecvl["p"] is None
    assert streamed == _direct(servers["cloud"], CLOUD, messages)
    messages += [{"role": "assistant", "content": streamed}, {"role": "user", "content": "Are you sure?"}]

    third = client.chat.completions.create(model="ecvl-router:speed", messages=messages)
    assert third.ecvl["route"] == "cloud" and third.ecvl["sticky"] is True
    assert third.choices[0].message.content == _direct(servers["cloud"], CLOUD, messages)
    messages += [{"role": "assistant", "content": [{"type": "text", "text": third.choices[0].message.content}]},
                 {"role": "user", "content": "Thanks."}]

    fourth = client.chat.completions.create(model="ecvl-router:speed", messages=messages)
    assert fourth.ecvl["route"] == "cloud" and fourth.ecvl["sticky"] is True
    assert sim_requests(servers["edge"]) == edge_before  # the edge never saw this conversation
    assert "\u2063" not in json.dumps([first.model_dump(), third.model_dump(), fourth.model_dump()], ensure_ascii=False) + streamed


def test_a_conversation_stays_on_its_backend_by_its_history_and_answers_are_untouched(router, sims, items) -> None:
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
            client = client_for(gateway)
            _conversation(client, servers, items[2]["question"])
            unrelated = client.chat.completions.create(model="ecvl-router:speed", messages=[
                {"role": "user", "content": items[2]["question"]}, {"role": "assistant", "content": "Something else."},
                {"role": "user", "content": "And why?"}])
            assert unrelated.ecvl["route"] == "edge" and unrelated.ecvl["sticky"] is False  # another history: routed on its own
            assert _metric(gateway, 'ecvl_router_conversation_lookups_total{key="history",result="hit"}') == 3
            assert _metric(gateway, 'ecvl_router_conversation_lookups_total{key="history",result="miss"}') == 1


def test_session_header_metadata_and_user_keep_a_conversation_without_its_history(router, sims) -> None:
    question = [{"role": "user", "content": "Describe the picture."}]
    follow_up = [{"role": "user", "content": "More detail, please."}]
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1") as gateway:
            client = client_for(gateway)
            named = [({"extra_headers": {"X-ECVL-Session": "conversation-1"}}, "header"),
                     ({"metadata": {"session_id": "conversation-2"}}, "metadata"),
                     ({"user": "user-3"}, "user")]
            for how, key in named:
                assert client.chat.completions.create(model="ecvl-router:quality", messages=question, **how).ecvl["route"] == "cloud"
                kept = client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, **how)
                assert kept.ecvl["route"] == "cloud" and kept.ecvl["sticky"] is True, key
                streamed = list(client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, stream=True, **how))
                assert streamed[0].ecvl["route"] == "cloud" and streamed[0].ecvl["sticky"] is True, key
            stranger = client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, extra_headers={"X-ECVL-Session": "other"})
            assert stranger.ecvl["route"] == "edge" and stranger.ecvl["sticky"] is False
            new_session = client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, user="user-3",
                                                         extra_headers={"X-ECVL-Session": "conversation-4"})
            assert new_session.ecvl["route"] == "edge"  # the header comes before the user
            private = client.chat.completions.create(model="ecvl-router:privacy", messages=follow_up, user="user-3")
            assert private.ecvl["route"] == "edge" and private.ecvl["sticky"] is False  # cloud_allowed: false wins
            again = client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, user="user-3")
            assert again.ecvl["route"] == "cloud"  # and the conversation is still the cloud's
            response = httpx.post(gateway.url + "/v1/chat/completions", timeout=30,
                                  json={"model": "ecvl-router", "messages": follow_up, "metadata": {"session_id": 7}})
            assert response.status_code == 400 and response.json()["error"]["param"] == "metadata.session_id"
            for key in ("header", "metadata", "user"):
                assert _metric(gateway, f'ecvl_router_conversation_lookups_total{{key="{key}",result="hit"}}') >= 2
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", stickiness={"keys": ["header"]}) as gateway:
            client = client_for(gateway)
            client.chat.completions.create(model="ecvl-router:quality", messages=question, user="user-5")
            ignored = client.chat.completions.create(model="ecvl-router:speed", messages=follow_up, user="user-5")
            assert ignored.ecvl["route"] == "edge" and ignored.ecvl["sticky"] is False  # user is not among the keys


def test_routes_kept_in_memory_expire(router, sims, items) -> None:
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", stickiness={"ttl_s": 0.2}) as gateway:
            client = client_for(gateway)
            messages = [{"role": "user", "content": items[3]["question"]}]
            first = client.chat.completions.create(model="ecvl-router:quality", messages=messages)
            time.sleep(0.5)
            messages += [{"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": "And why?"}]
            later = client.chat.completions.create(model="ecvl-router:speed", messages=messages)
            assert later.ecvl["route"] == "edge" and later.ecvl["sticky"] is False


# ---------------------------------------------------------------------- Redis
def _redis_settings(server, **more) -> dict:
    return {"stickiness": {"store": "redis", "url": server.url, **more}}


def test_replicas_sharing_redis_keep_a_conversation_whichever_serves_each_turn(router, sims, items, redis_server) -> None:
    with backend_sims(sims) as servers:
        urls = (servers["edge"].url + "/v1", servers["cloud"].url + "/v1")
        with gateway_server(router, *urls, **_redis_settings(redis_server)) as one, gateway_server(router, *urls, **_redis_settings(redis_server)) as two:
            messages = [{"role": "user", "content": items[4]["question"]}]
            first = client_for(one).chat.completions.create(model="ecvl-router:quality", messages=messages)
            messages += [first.choices[0].message, {"role": "user", "content": "And why?"}]
            second = client_for(two).chat.completions.create(model="ecvl-router:speed", messages=messages)
            assert second.ecvl["route"] == "cloud" and second.ecvl["sticky"] is True
            assert second.choices[0].message.content == _direct(servers["cloud"], CLOUD, messages)
            session = {"X-ECVL-Session": "shared-conversation"}
            client_for(two).chat.completions.create(model="ecvl-router:quality", messages=messages[:1], extra_headers=session)
            third = client_for(one).chat.completions.create(model="ecvl-router:speed", messages=messages[:1], extra_headers=session)
            assert third.ecvl["route"] == "cloud" and third.ecvl["sticky"] is True
            _conversation(client_for(two), servers, items[5]["question"])
    stored = redis_server.client()
    keys = stored.keys("*")
    assert keys and all(key.startswith(b"ecvl-router:route:") for key in keys)
    assert not any(b"shared-conversation" in key for key in keys)  # keys are hashed
    assert all(0 < stored.pttl(key) <= 3600 * 1000 for key in keys) and set(stored.mget(keys)) == {b"cloud"}


def test_routes_kept_in_redis_expire(router, sims, items, redis_server) -> None:
    with backend_sims(sims) as servers:
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", **_redis_settings(redis_server, ttl_s=0.3)) as gateway:
            client = client_for(gateway)
            session = {"X-ECVL-Session": "short-lived"}
            client.chat.completions.create(model="ecvl-router:quality", messages=[{"role": "user", "content": "Hi"}], extra_headers=session)
            time.sleep(0.6)
            later = client.chat.completions.create(model="ecvl-router:speed", messages=[{"role": "user", "content": "Hi"}], extra_headers=session)
            assert later.ecvl["route"] == "edge" and later.ecvl["sticky"] is False


def test_with_redis_down_requests_are_answered_without_stickiness_and_counted(router, sims, items, redis_server, caplog) -> None:
    question = [{"role": "user", "content": items[6]["question"]}]
    session = {"X-ECVL-Session": "during-an-outage"}
    with backend_sims(sims) as servers:
        settings = _redis_settings(redis_server, retry_after_s=0, timeout_s=1)
        with gateway_server(router, servers["edge"].url + "/v1", servers["cloud"].url + "/v1", **settings) as gateway:
            client = client_for(gateway)
            assert client.chat.completions.create(model="ecvl-router:quality", messages=question, extra_headers=session).ecvl["route"] == "cloud"
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="ecvl_router.serve.stickiness"):
                for _ in range(3):
                    answer = client.chat.completions.create(model="ecvl-router:speed", messages=question, extra_headers=session)
                    assert answer.ecvl["route"] == "edge" and answer.ecvl["sticky"] is False  # routed on its own
                    assert answer.choices[0].message.content == _direct(servers["edge"], EDGE, question)
                streamed = list(client.chat.completions.create(model="ecvl-router:speed", messages=question, stream=True))
                assert streamed[0].ecvl["route"] == "edge"
            assert _metric(gateway, 'ecvl_router_route_store_unavailable_total{operation="lookup"}') == 3
            assert _metric(gateway, 'ecvl_router_route_store_unavailable_total{operation="store"}') == 4
            assert _metric(gateway, 'ecvl_router_conversation_lookups_total{key="header",result="unavailable"}') == 3
            warnings = [r for r in caplog.records if r.name == "ecvl_router.serve.stickiness" and r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "routing without stickiness" in warnings[0].getMessage()
            redis_server.start()
            client.chat.completions.create(model="ecvl-router:quality", messages=question, extra_headers=session)
            back = client.chat.completions.create(model="ecvl-router:speed", messages=question, extra_headers=session)
            assert back.ecvl["route"] == "cloud" and back.ecvl["sticky"] is True


def test_redis_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs url"):
        StickinessPolicy(store="redis")
    with pytest.raises(ValueError, match="password_env"):
        StickinessPolicy(store="redis", url="redis://:secret@127.0.0.1:6379/0")
    with pytest.raises(ValueError, match="redis://"):
        StickinessPolicy(store="redis", url="http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="set store: redis"):
        StickinessPolicy(url="redis://127.0.0.1:6379/0")
    with pytest.raises(ValueError, match="once"):
        StickinessPolicy(keys=["user", "user"])
    with pytest.raises(ValueError, match="history must come last"):
        StickinessPolicy(keys=["history", "header"])
    assert StickinessPolicy().markers is False and StickinessPolicy().store == "memory"  # the defaults touch no answer
