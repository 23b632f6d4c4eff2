"""LLM-as-a-Judge: score every collected answer with the paper's 1-10 rubric (Appendix A.2) and write the
Response Score Dataset.

Judgements are appended to ``raw/judgements.jsonl`` as they arrive, so judging resumes like collection. A
judgement belongs to one answer (by its text's hash) and one judge model: a re-collected answer or a new
judge is judged afresh.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecvl_router.collect.client import ChatClient
from ecvl_router.collect.collector import Item, build_messages, collected_records, failure_record, now_iso
from ecvl_router.collect.config import JudgeConfig
from ecvl_router.collect.pool import ProgressCallback, Tally, drain
from ecvl_router.collect.scoring import parse_score
from ecvl_router.collect.store import Record, RecordWriter, latest, read_records
from ecvl_router.collect.workspace import CollectionDir, read_json, write_jsonl_atomic
from ecvl_router.data import schema
from ecvl_router.manifest import build_manifest, file_sha256, write_json_atomic, write_manifest
from ecvl_router.openai_http.errors import CallError
from ecvl_router.prompts import load_template, render_prompt



class SelfJudgingError(ValueError):
    """The judge is one of the judged models."""


def response_digest(text: str) -> str:
    """Identifies the judged answer, so a re-collected answer is judged again."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def self_judging_conflicts(judge: JudgeConfig, collected: dict[tuple, Record]) -> list[str]:
    """Names of judged models that are the judge itself (same model id or name, ignoring case)."""
    judge_ids = {judge.model.lower(), str(judge.name).lower()}
    conflicts = {
        record["model"]
        for record in collected.values()
        if record.get("model_id", "").lower() in judge_ids or record["model"].lower() in judge_ids
    }
    return sorted(conflicts)


def _is_current(judgement: Record | None, answer: Record, judge: JudgeConfig) -> bool:
    return (
        judgement is not None
        and judgement.get("response_sha256") == response_digest(answer["response"])
        and judgement.get("judge_model") == judge.model
    )


class _JudgeRun:
    def __init__(self, judge: JudgeConfig, template: str, root: Path) -> None:
        self.judge = judge
        self.template = template
        self.root = root

    async def score(self, client: ChatClient, job: tuple[Item, Record]) -> Record:
        item, answer = job
        judge = self.judge
        base = {
            "item_id": item["item_id"],
            "model": answer["model"],
            "response_sha256": response_digest(answer["response"]),
            "judge": judge.name,
            "judge_model": judge.model,
        }
        prompt = render_prompt(self.template, question=item["question"], reference=item["reference"], prediction=answer["response"])
        try:
            messages = await build_messages(item, self.root, judge, text=prompt)
            completion, attempts = await client.complete_with_retries(messages)
        except CallError as error:
            return failure_record(base, error.kind, error.message, error.attempts)
        except OSError as error:  # the stored image could not be read
            return failure_record(base, "image_error", str(error), 0)
        parsed = parse_score(completion.text, judge.score_min, judge.score_max)
        return {
            **base,
            "ok": parsed.ok,
            "score": parsed.score,
            "rationale": parsed.rationale,
            "raw_output": completion.text,
            "error_kind": parsed.kind,
            "error_message": parsed.problem,
            "attempts": attempts,
            "latency_s": completion.latency_s,
            "finished_at": now_iso(),
        }


async def judge_responses(
    workspace: CollectionDir,
    judge: JudgeConfig,
    api_key: str | None,
    *,
    allow_self_judging: bool = False,
    retry_failed: bool = True,
    on_progress: ProgressCallback | None = None,
) -> Tally:
    """Judge every collected answer that has no current judgement (and, with ``retry_failed``, those whose
    judgement failed or could not be read); raises SelfJudgingError when the judge is a judged model."""
    run = _JudgeRun(judge, load_template(judge.template), workspace.root)
    items = {item["item_id"]: item for item in workspace.read_items()}
    collected = {key: record for key, record in collected_records(workspace).items() if record["ok"] and key[0] in items}
    conflicts = self_judging_conflicts(judge, collected)
    if conflicts and not allow_self_judging:
        raise SelfJudgingError(
            f"the judge {judge.model!r} is also a judged model ({', '.join(conflicts)}): a model favours its own answers "
            "(self-enhancement bias); use another judge or --allow-self-judging"
        )
    judged = latest(read_records(workspace.judgements_path))
    jobs = []
    for key, answer in collected.items():
        judgement = judged.get(key)
        if not _is_current(judgement, answer, judge) or (retry_failed and not judgement["ok"]):
            jobs.append((items[key[0]], answer))
    tally = Tally(str(judge.name), total=len(collected), resumed=len(collected) - len(jobs))
    if on_progress is not None:
        on_progress(tally)
    async with RecordWriter(workspace.judgements_path) as writer, ChatClient(judge, api_key) as client:
        await drain(jobs, functools.partial(run.score, client), workers=judge.max_concurrency, writer=writer, tally=tally, on_progress=on_progress)
    return tally


@dataclass
class DatasetReport:
    """What went into ``responses.jsonl`` and what was left out, and why."""

    responses: int = 0
    collect_failures: Counter[str] = field(default_factory=Counter)
    judge_failures: Counter[str] = field(default_factory=Counter)
    not_judged: int = 0
    estimated_tokens: int = 0

    @property
    def left_out(self) -> int:
        return sum(self.collect_failures.values()) + sum(self.judge_failures.values()) + self.not_judged


def _response_row(answer: Record, judgement: Record) -> dict[str, Any]:
    row = {
        "item_id": answer["item_id"],
        "model": answer["model"],
        "response": answer["response"],
        "score": judgement["score"],
        "latency_s": answer["latency_s"],
        "output_tokens": answer["output_tokens"],
        "input_tokens": answer["input_tokens"],
    }
    optional = {"ttft_s": answer.get("ttft_s"), "rationale": judgement.get("rationale")}
    return row | {name: value for name, value in optional.items() if value is not None}


def write_judged_dataset(workspace: CollectionDir, judge: JudgeConfig) -> DatasetReport:
    """Write ``responses.jsonl`` (answers with a current, readable judgement), ``dataset.json`` with the judge's
    scale, and ``manifest.json``; returns counts of what was written and left out."""
    items = workspace.read_items()
    collected = collected_records(workspace)
    judged = latest(read_records(workspace.judgements_path))
    models = list(dict.fromkeys(model for _, model in collected))
    report = DatasetReport()
    rows = []
    for item in items:
        for model in models:
            answer = collected.get((item["item_id"], model))
            if answer is None:
                continue
            judgement = judged.get((item["item_id"], model))
            if not answer["ok"]:
                report.collect_failures[answer["error_kind"]] += 1
            elif not _is_current(judgement, answer, judge):
                report.not_judged += 1
            elif not judgement["ok"]:
                report.judge_failures[judgement["error_kind"]] += 1
            else:
                rows.append(_response_row(answer, judgement))
                report.estimated_tokens += bool(answer.get("tokens_estimated"))
    report.responses = len(rows)
    write_jsonl_atomic(workspace.root / schema.RESPONSES_JSONL, rows)
    info_path = workspace.root / schema.DATASET_FILE
    info = read_json(info_path) or {"name": workspace.root.name}
    sources = sorted({item["source"] for item in items})
    info.update(
        score_min=judge.score_min,
        score_max=judge.score_max,
        description=(
            f"Answers of {len(models)} model(s) ({', '.join(models)}) to {len(items)} items from {', '.join(sources)}, "
            f"collected with ecvl-router and scored {judge.score_min:g}-{judge.score_max:g} by the judge {judge.model}."
        ),
    )
    write_json_atomic(info_path, info)
    template_source = str(judge.template) if judge.template else "ecvl_router/prompts/judge_1_10.txt"
    write_manifest(
        workspace.root,
        build_manifest(
            "judge",
            inputs={"collection": read_json(workspace.collect_manifest_path)},
            settings={"judge": judge.public_settings(), "template": template_source, "template_sha256": hashlib.sha256(load_template(judge.template).encode()).hexdigest()},
            counts={
                "responses": report.responses,
                "collect_failures": dict(report.collect_failures),
                "judge_failures": dict(report.judge_failures),
                "not_judged": report.not_judged,
                "estimated_token_counts": report.estimated_tokens,
            },
            sha256={name: file_sha256(workspace.root / name) for name in (schema.ITEMS_JSONL, schema.RESPONSES_JSONL)},
        ),
    )
    return report

