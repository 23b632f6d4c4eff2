"""Collection runs against local OpenAI-compatible servers: outcomes, failures, resume, shards."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from ecvl_router.collect import BackendConfig, BenchmarkItem, CollectionDir, Shard, collect_responses
from ecvl_router.collect.store import read_records
from tests.fake_openai import FakeServer, answer_for


@pytest.fixture(scope="module")
def server():
    with FakeServer() as running:
        yield running


def make_items(tmp_path: Path, count: int = 10) -> list[BenchmarkItem]:
    items = []
    for i in range(count):
        image = None
        if i % 2 == 0:
            image = tmp_path / f"source-{i}.png"
            Image.new("RGB", (1200, 300), (i * 20, 100, 50)).save(image)
        tag = {3: " [malformed]", 5: " [empty]"}.get(i, "")
        items.append(BenchmarkItem(f"item-{i}", "synthetic", f"Question {i}{tag}", f"answer {i}", image))
    return items


def config(server: FakeServer, name: str, model: str, **settings) -> BackendConfig:
    return BackendConfig(name=name, base_url=server.base_url, model=model, retry={"backoff_base_s": 0.01, "backoff_max_s": 0.02}, **settings)


def collect(workspace: CollectionDir, items, backends, **options):
    return asyncio.run(collect_responses(workspace, items, backends, {b.name: None for b in backends}, **options))


def requests_for(server: FakeServer, model: str, since: int) -> list[dict]:
    return [r for r in server.state.requests[since:] if r["model"] == model]


def test_a_run_records_every_outcome(server: FakeServer, tmp_path: Path) -> None:
    workspace = CollectionDir(tmp_path / "out")
    items = workspace.add_items(make_items(tmp_path), dataset_name="t")
    backends = [
        config(server, "vision", "good", image_max_side=256, max_concurrency=4),
        config(server, "blind", "nousage", multimodal=False),
        config(server, "unstable", "flaky"),
        config(server, "faulty", "broken"),
        config(server, "streamer", "good", stream=True),
    ]
    before = len(server.state.requests)
    progress: list[tuple[str, int]] = []
    tallies = collect(workspace, items, backends, on_progress=lambda t: progress.append((t.name, t.done)))

    records = read_records(workspace.results_path(None))
    assert Counter((r["item_id"], r["model"]) for r in records) == {(i["item_id"], b.name): 1 for i in items for b in backends}
    by_key = {(r["item_id"], r["model"]): r for r in records}

    vision = by_key[("item-0", "vision")]
    assert vision["ok"] and vision["response"] == answer_for("good", "Question 0") and vision["image_sent"]
    assert vision["model_id"] == "good" and vision["latency_s"] > 0 and not vision["tokens_estimated"]
    request = next(r for r in requests_for(server, "good", before) if "Question 0" in str(r["body"]["messages"]) and not r["body"].get("stream"))
    image_part, text_part = request["body"]["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "Question 0"}
    with Image.open(io.BytesIO(base64.b64decode(image_part["image_url"]["url"].split(",", 1)[1]))) as sent:
        assert max(sent.size) == 256

    blind = [r for r in records if r["model"] == "blind"]
    assert all(r["ok"] and r["tokens_estimated"] and not r["image_sent"] for r in blind)
    assert all(isinstance(r["body"]["messages"][0]["content"], str) for r in requests_for(server, "nousage", before))

    assert all(r["ok"] and r["attempts"] == 3 for r in records if r["model"] == "unstable")
    faulty = {r["item_id"]: r for r in records if r["model"] == "faulty"}
    assert faulty["item-3"]["error_kind"] == "malformed_response" and not faulty["item-3"]["ok"]
    assert faulty["item-5"]["error_kind"] == "empty_choices" and "response" not in faulty["item-5"]
    assert sum(r["ok"] for r in faulty.values()) == len(items) - 2
    assert all(r["ttft_s"] is not None and r["ttft_s"] <= r["latency_s"] for r in records if r["model"] == "streamer")

    tally = {t.name: t for t in tallies}
    assert tally["faulty"].failed == 2 and tally["faulty"].failures == {"malformed_response": 1, "empty_choices": 1}
    assert tally["vision"].done == len(items) and tally["vision"].resumed == 0
    assert ("vision", len(items)) in progress


def test_rerun_calls_only_what_is_missing_or_failed(server: FakeServer, tmp_path: Path) -> None:
    workspace = CollectionDir(tmp_path / "out")
    items = workspace.add_items(make_items(tmp_path, 6), dataset_name="t")
    backends = [config(server, "fine", "good"), config(server, "faulty", "broken")]
    collect(workspace, items[:4], backends)

    before = len(server.state.requests)
    tallies = {t.name: t for t in collect(workspace, items, backends)}
    assert tallies["fine"].resumed == 4 and tallies["fine"].done == 2
    assert tallies["faulty"].resumed == 3 and tallies["faulty"].done == 3  # item-3 retried, item-4 and item-5 new
    assert len(server.state.requests) - before == 5

    before = len(server.state.requests)
    tallies = {t.name: t for t in collect(workspace, items, backends, retry_failed=False)}
    assert len(server.state.requests) == before
    assert tallies["faulty"].resumed == 6 and tallies["faulty"].done == 0

    records = read_records(workspace.results_path(None))
    latest_faulty = {r["item_id"]: r for r in records if r["model"] == "faulty"}
    assert [k for k, r in sorted(latest_faulty.items()) if not r["ok"]] == ["item-3", "item-5"]
    assert sum(1 for r in records if r["model"] == "fine") == 6  # successes are never asked for twice


def test_shards_split_the_work_into_separate_stores(server: FakeServer, tmp_path: Path) -> None:
    workspace = CollectionDir(tmp_path / "out")
    items = workspace.add_items(make_items(tmp_path, 10), dataset_name="t")
    backends = [config(server, "fine", "good")]
    for index in range(3):
        collect(workspace, items, backends, shard=Shard(index, 3))
    files = workspace.results_files()
    assert [f.name for f in files] == [f"results-shard-{i}-of-3.jsonl" for i in range(3)]
    per_shard = [[r["item_id"] for r in read_records(f)] for f in files]
    assert sorted(sum(per_shard, [])) == sorted(i["item_id"] for i in items)
    assert all(Shard(i, 3).contains(item) for i, ids in enumerate(per_shard) for item in ids)
    assert collect(workspace, items, backends)[0].resumed == 10  # an unsharded re-run sees every shard's results


def test_calls_per_second_count_only_the_time_a_backend_was_called(tmp_path: Path) -> None:
    """A backend done in a moment is not averaged over the slow backend's minutes."""
    from ecvl_router.collect.pool import Tally, drain
    from ecvl_router.collect.store import RecordWriter

    async def work(delay: float) -> dict:
        await asyncio.sleep(delay)
        return {"item_id": "x", "model": "m", "ok": True}

    async def run() -> tuple[Tally, Tally]:
        fast, slow = Tally("fast", total=4), Tally("slow", total=2)
        async with RecordWriter(tmp_path / "results.jsonl") as writer:
            await asyncio.gather(
                drain([0.01] * 4, work, workers=4, writer=writer, tally=fast),
                drain([0.6] * 2, work, workers=1, writer=writer, tally=slow),
            )
        return fast, slow

    fast, slow = asyncio.run(run())
    assert fast.ended_at is not None and slow.ended_at is not None and fast.ended_at < slow.ended_at
    assert fast.throughput > 4 / 0.3  # over the whole run (1.2 s) it would be about 3.3 calls/s
    assert slow.throughput == pytest.approx(2 / 1.2, rel=0.3)
    frozen = fast.throughput
    assert fast.throughput == frozen  # a finished backend's rate no longer decays
