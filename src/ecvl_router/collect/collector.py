"""Collect the answers of several backends to benchmark items: concurrent, durable and resumable."""

from __future__ import annotations

import asyncio
import functools
import itertools
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecvl_router.collect.client import ChatClient, Messages
from ecvl_router.collect.config import BackendConfig
from ecvl_router.collect.images import image_data_uri
from ecvl_router.collect.pool import ProgressCallback, Tally, drain
from ecvl_router.openai_http.errors import CallError
from ecvl_router.collect.shard import Shard
from ecvl_router.collect.store import Record, RecordWriter, latest, read_records
from ecvl_router.collect.workspace import CollectionDir, read_json
from ecvl_router.manifest import build_manifest, write_json_atomic

Item = dict[str, Any]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def failure_record(base: Record, kind: str, message: str, attempts: int) -> Record:
    """The record of a call that failed for good: why, and after how many attempts."""
    return {**base, "ok": False, "error_kind": kind, "error_message": message, "attempts": attempts, "finished_at": now_iso()}


async def build_messages(item: Item, root: Path, backend: BackendConfig, text: str | None = None) -> Messages:
    """The chat messages for an item: its image (for a multimodal backend) before the text, which defaults to
    the question; the backend's system prompt first."""
    prompt = item["question"] if text is None else text
    content: str | list[dict[str, Any]] = prompt
    if item["image"] is not None and backend.multimodal:
        uri = await asyncio.to_thread(image_data_uri, root / item["image"], backend.image_max_side)
        content = [{"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": prompt}]
    system = [{"role": "system", "content": backend.system_prompt}] if backend.system_prompt else []
    return [*system, {"role": "user", "content": content}]


def collected_records(workspace: CollectionDir) -> dict[tuple, Record]:
    """The latest collection record per (item_id, model) over every results store of the folder."""
    return latest(itertools.chain.from_iterable(read_records(path) for path in workspace.results_files()))


class _BackendRun:
    """The calls of one backend: which items still need an answer, and how to ask for one."""

    def __init__(self, backend: BackendConfig, items: list[Item], previous: dict[tuple, Record], retry_failed: bool, root: Path):
        self.backend = backend
        self.root = root
        self.todo = [
            item
            for item in items
            if (record := previous.get((item["item_id"], backend.name))) is None or (retry_failed and not record["ok"])
        ]
        kept_failures = 0 if retry_failed else sum(
            1 for item in items if (record := previous.get((item["item_id"], backend.name))) is not None and not record["ok"]
        )
        self.tally = Tally(backend.name, total=len(items), resumed=len(items) - len(self.todo), failed_before=kept_failures)

    async def answer(self, client: ChatClient, item: Item) -> Record:
        backend = self.backend
        base = {"item_id": item["item_id"], "model": backend.name, "model_id": backend.model}
        image_sent = item["image"] is not None and backend.multimodal
        try:
            messages = await build_messages(item, self.root, backend)
            completion, attempts = await client.complete_with_retries(messages)
        except CallError as error:
            return failure_record(base, error.kind, error.message, error.attempts)
        except OSError as error:  # the stored image could not be read
            return failure_record(base, "image_error", str(error), 0)
        return {
            **base,
            "ok": True,
            "response": completion.text,
            "latency_s": completion.latency_s,
            "ttft_s": completion.ttft_s,
            "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens,
            "tokens_estimated": completion.tokens_estimated,
            "image_sent": image_sent,
            "attempts": attempts,
            "finished_at": now_iso(),
        }


async def collect_responses(
    workspace: CollectionDir,
    items: list[Item],
    backends: list[BackendConfig],
    api_keys: dict[str, str | None],
    *,
    shard: Shard | None = None,
    retry_failed: bool = True,
    on_progress: ProgressCallback | None = None,
) -> list[Tally]:
    """Ask every backend about every item of ``items`` in ``shard`` that has no answer yet (and, with
    ``retry_failed``, again about those whose last call failed); each outcome is appended to the folder's
    results store as it arrives. Returns one tally per backend."""
    selected = [item for item in items if shard is None or shard.contains(item["item_id"])]
    previous = collected_records(workspace)
    runs = [_BackendRun(backend, selected, previous, retry_failed, workspace.root) for backend in backends]
    async with RecordWriter(workspace.results_path(shard)) as writer, AsyncExitStack() as stack:
        for run in runs:
            if on_progress is not None:
                on_progress(run.tally)
        clients = [await stack.enter_async_context(ChatClient(run.backend, api_keys.get(run.backend.name))) for run in runs]
        async with asyncio.TaskGroup() as group:
            for run, client in zip(runs, clients):
                work = functools.partial(run.answer, client)
                group.create_task(
                    drain(run.todo, work, workers=run.backend.max_concurrency, writer=writer, tally=run.tally, on_progress=on_progress)
                )
    return [run.tally for run in runs]


def write_collect_manifest(workspace: CollectionDir, backends: list[BackendConfig], settings: dict[str, Any], tallies: list[Tally] | None = None) -> None:
    """Record the backends (without keys) and this run's settings and counts in ``raw/collect-manifest.json``."""
    path = workspace.collect_manifest_path
    previous = read_json(path) or {}
    run: dict[str, Any] = {"at": now_iso(), **settings}
    if tallies is not None:
        run["counts"] = {t.name: {"done_before": t.resumed, "answered": t.done - t.failed, "failed": t.failed} for t in tallies}
    manifest = build_manifest(
        "collect",
        inputs={"benchmarks": settings.get("benchmarks", [])},
        settings={"backends": {**previous.get("settings", {}).get("backends", {}), **{b.name: b.public_settings() for b in backends}}},
        runs=[*previous.get("runs", []), run],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, manifest)
