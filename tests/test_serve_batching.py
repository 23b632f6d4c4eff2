"""Micro-batching of routing decisions: batch formation, per-item errors, and batched decisions equal to single ones."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from ecvl_router import AsyncRouterClient
from ecvl_router.data import load_rsd
from ecvl_router.features import text as text_module
from ecvl_router.serve import QueryRouter
from ecvl_router.serve.batching import MicroBatcher
from ecvl_router.serve.routing import Decision, Query
from tests.serve_support import demo_data, tiny_bundle  # noqa: F401


class GatedDouble:
    """Doubles numbers in batches; the first batch waits for ``gate`` so that later items queue up meanwhile."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[int]] = []
        self._calls = 0
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        with self._lock:
            first, self._calls = self._calls == 0, self._calls + 1
        self.started.set()
        if first:
            self.gate.wait(timeout=30)
        with self._lock:
            self.batches.append(list(items))
        return [ValueError(f"bad {item}") if item < 0 else 2 * item for item in items]


def test_a_lone_item_is_a_batch_of_one() -> None:
    process = GatedDouble()
    process.gate.set()
    batcher = MicroBatcher(process, max_batch=8, max_wait_ms=1000)
    try:
        assert batcher.submit(21).result(timeout=30) == 42
        assert process.batches == [[21]]
        assert batcher.batch_sizes() == {1: 1}
    finally:
        batcher.close()


def test_items_queued_while_a_batch_runs_form_the_next_batches_up_to_the_maximum() -> None:
    process = GatedDouble()
    batcher = MicroBatcher(process, max_batch=4, max_wait_ms=0)
    try:
        first = batcher.submit(0)
        assert process.started.wait(timeout=30)
        queued = [batcher.submit(value) for value in range(1, 7)]
        process.gate.set()
        assert [future.result(timeout=30) for future in [first, *queued]] == [0, 2, 4, 6, 8, 10, 12]
        assert process.batches == [[0], [1, 2, 3, 4], [5, 6]]
        assert batcher.batch_sizes() == {1: 1, 4: 1, 2: 1}
    finally:
        batcher.close()


def test_an_error_fails_its_own_item_only_and_cancelled_items_are_skipped() -> None:
    process = GatedDouble()
    batcher = MicroBatcher(process, max_batch=8, max_wait_ms=0)
    try:
        first = batcher.submit(1)
        assert process.started.wait(timeout=30)
        bad, cancelled, good = batcher.submit(-1), batcher.submit(5), batcher.submit(3)
        assert cancelled.cancel()
        process.gate.set()
        assert first.result(timeout=30) == 2 and good.result(timeout=30) == 6
        with pytest.raises(ValueError, match="bad -1"):
            bad.result(timeout=30)
        assert process.batches == [[1], [-1, 3]]
    finally:
        batcher.close()


def test_with_two_in_flight_later_batches_are_computed_while_the_first_still_runs() -> None:
    process = GatedDouble()
    batcher = MicroBatcher(process, max_batch=4, max_wait_ms=0, in_flight=2, name="pair")
    try:
        first = batcher.submit(0)
        assert process.started.wait(timeout=30)
        queued = [batcher.submit(value) for value in range(1, 7)]
        assert [future.result(timeout=30) for future in queued] == [2, 4, 6, 8, 10, 12]
        assert not first.done()  # the first batch still waits for its gate
        process.gate.set()
        assert first.result(timeout=30) == 0
        assert process.batches[-1] == [0]
        assert sorted(value for batch in process.batches[:-1] for value in batch) == [1, 2, 3, 4, 5, 6]
        assert all(len(batch) <= 4 for batch in process.batches)
    finally:
        batcher.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("pair-")]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(GatedDouble(), max_batch=0, max_wait_ms=1)
    with pytest.raises(ValueError, match="in_flight"):
        MicroBatcher(GatedDouble(), max_batch=1, max_wait_ms=1, in_flight=0)


@pytest.fixture(scope="module")
def router(tiny_bundle: Path) -> QueryRouter:
    loaded = QueryRouter.from_bundle(tiny_bundle)
    yield loaded
    loaded.close()


def demo_queries(data: Path) -> list[Query]:
    """Every demo item as a query (with its image file where it has one), under alternating scenarios."""
    rsd = load_rsd(data)
    return [Query(item["question"], rsd.image_path(item["image"]), ("quality", "speed", "privacy")[i % 3])
            for i, item in enumerate(rsd.items.to_dict("records"))]


def test_batched_decisions_equal_single_ones(router: QueryRouter, demo_data: Path) -> None:
    queries = demo_queries(demo_data)
    assert any(query.image is not None for query in queries) and any(query.image is None for query in queries)
    batched = router.decide_batch(queries)
    for query, together in zip(queries, batched, strict=True):
        alone = router.decide(query.question, query.image, query.scenario)
        assert isinstance(together, Decision) and together.batch_size == len(queries)
        assert together.p == pytest.approx(alone.p, abs=1e-5)
        assert (together.route, together.tau, together.scenario) == (alone.route, alone.tau, alone.scenario)


def test_a_bad_image_fails_its_query_only(router: QueryRouter, demo_data: Path) -> None:
    good = demo_queries(demo_data)[0]
    results = router.decide_batch([good, Query("What is shown?", b"not an image", "quality"), Query("hi", None, "nope")])
    assert isinstance(results[0], Decision)
    assert isinstance(results[1], ValueError) and "cannot decode" in str(results[1])
    assert isinstance(results[2], KeyError) and "nope" in str(results[2])


def test_concurrent_async_client_decisions_are_batched_and_equal_single_ones(tiny_bundle: Path, demo_data: Path) -> None:
    queries = [query for query in demo_queries(demo_data) if query.image is not None][:12]
    alone = QueryRouter.from_bundle(tiny_bundle)
    try:
        expected = [alone.decide(query.question, query.image, query.scenario).p for query in queries]
    finally:
        alone.close()

    async def together() -> list[Decision]:
        async with AsyncRouterClient(tiny_bundle, batching={"max_batch": 64, "max_wait_ms": 0}) as client:
            busy = text_module._TOKENIZER_LOCK  # held: the encoders look busy until every query is queued
            busy.acquire()
            tasks = [asyncio.create_task(client.decide(q.question, q.image, q.scenario)) for q in queries]
            await asyncio.sleep(0)  # every task submits its query in its first step
            busy.release()
            return await asyncio.gather(*tasks)

    decisions = asyncio.run(together())
    assert [d.p for d in decisions] == pytest.approx(expected, abs=1e-5)
    assert max(d.batch_size for d in decisions) > 1


def test_an_in_memory_image_is_routed(router: QueryRouter) -> None:
    decision = router.decide("What colour is it?", Image.new("RGB", (40, 30), (200, 10, 10)), "speed")
    assert decision.route == "edge" and decision.batch_size == 1
