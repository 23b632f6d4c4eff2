"""Judging collected answers with an LLM judge served locally, and writing the Response Score Dataset."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from PIL import Image

from ecvl_router.collect import (
    BackendConfig,
    BenchmarkItem,
    CollectionDir,
    ConfigError,
    JudgeConfig,
    SelfJudgingError,
    collect_responses,
    judge_responses,
    write_judged_dataset,
)
from ecvl_router.prompts import NO_REFERENCE, load_template, render_prompt
from ecvl_router.collect.store import read_records
from ecvl_router.data import check_dataset, load_rsd
from tests.fake_openai import FakeServer, answer_for, judge_output


@pytest.fixture(scope="module")
def server():
    with FakeServer() as running:
        yield running


@pytest.fixture
def collected(server: FakeServer, tmp_path: Path) -> CollectionDir:
    """Eight items answered by 'alpha' (always) and 'beta' (fails on two of them)."""
    image = tmp_path / "chart.png"
    Image.new("RGB", (80, 60), (30, 60, 90)).save(image)
    tags = {2: " [malformed]", 3: " [unjudgeable]", 4: " [eleven]", 5: " [empty]"}
    items = [
        BenchmarkItem(f"q{i}", "charts" if i % 2 else "ocr", f"Question {i}{tags.get(i, '')}", None if i == 1 else f"ref {i}", image if i % 2 == 0 else None)
        for i in range(8)
    ]
    workspace = CollectionDir(tmp_path / "rsd")
    records = workspace.add_items(items, dataset_name="judged")
    backends = [
        BackendConfig(name="alpha", base_url=server.base_url, model="good"),
        BackendConfig(name="beta", base_url=server.base_url, model="broken", retry={"max_attempts": 1}),
    ]
    asyncio.run(collect_responses(workspace, records, backends, {"alpha": None, "beta": None}))
    return workspace


def judge_config(server: FakeServer, **settings) -> JudgeConfig:
    return JudgeConfig(base_url=server.base_url, model="judge", retry={"backoff_base_s": 0.01}, **settings)


def judge_requests(server: FakeServer, since: int) -> list[dict]:
    return [r for r in server.state.requests[since:] if r["model"] == "judge"]


def prompt_of(request: dict) -> str:
    content = request["body"]["messages"][-1]["content"]
    return content if isinstance(content, str) else content[-1]["text"]


def test_judging_writes_a_valid_dataset_and_reports_what_it_left_out(server: FakeServer, collected: CollectionDir) -> None:
    before = len(server.state.requests)
    tally = asyncio.run(judge_responses(collected, judge_config(server), None))
    assert tally.total == 14 and tally.done == 14  # 8 alpha + 6 beta answers
    assert tally.failures == {"unparseable": 2, "out_of_range": 2}  # [unjudgeable] and [eleven], for both models

    prompts = {prompt_of(r).split("\n")[2]: r for r in judge_requests(server, before)}
    request = prompts["[Question] Question 0"]
    text = prompt_of(request)
    assert "Scoring Guidelines:" in text and "- 10: Answer not only meets reference answer requirements" in text
    assert "[Reference Answer]\nref 0\n" in text and text.endswith("Score: ")
    assert "[Model Answer] " in text
    image_part = request["body"]["messages"][-1]["content"][0]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert f"[Reference Answer]\n{NO_REFERENCE}\n" in prompt_of(prompts["[Question] Question 1"])

    report = write_judged_dataset(collected, judge_config(server))
    assert report.responses == 10
    assert report.collect_failures == {"malformed_response": 1, "empty_choices": 1}
    assert report.judge_failures == {"unparseable": 2, "out_of_range": 2}
    assert report.left_out == 6 and report.not_judged == 0

    rsd, problems = check_dataset(collected.root, decode_images=True)
    assert problems == []
    rows = [json.loads(line) for line in (collected.root / "responses.jsonl").read_text().splitlines()]
    alpha0 = next(row for row in rows if (row["item_id"], row["model"]) == ("q0", "alpha"))
    answer = answer_for("good", "Question 0")
    assert alpha0["response"] == answer and alpha0["score"] == int(judge_output(answer).split("\n")[0])
    assert alpha0["rationale"].startswith("The answer is compared with the reference")
    assert alpha0["input_tokens"] == 11 and alpha0["latency_s"] > 0
    assert {row["item_id"] for row in rows if row["model"] == "beta"} == {"q0", "q1", "q6", "q7"}
    info = json.loads((collected.root / "dataset.json").read_text())
    assert (info["score_min"], info["score_max"]) == (1, 10) and "judge" in info["description"]
    manifest = json.loads((collected.root / "manifest.json").read_text())
    assert manifest["producer"] == "ecvl-router judge" and manifest["counts"]["responses"] == 10

    pair = load_rsd(collected.root).pair("beta", "alpha")
    assert len(pair) == 4 and pair.missing_cloud == 0


def test_judging_resumes_and_retries_only_failures(server: FakeServer, collected: CollectionDir) -> None:
    config = judge_config(server)
    asyncio.run(judge_responses(collected, config, None))
    before = len(server.state.requests)
    tally = asyncio.run(judge_responses(collected, config, None, retry_failed=False))
    assert tally.resumed == 14 and len(server.state.requests) == before
    tally = asyncio.run(judge_responses(collected, config, None))
    assert tally.done == 4 and len(judge_requests(server, before)) == 4  # the unreadable ones, once more
    renamed = JudgeConfig(name="renamed", base_url=server.base_url, model="judge")
    assert asyncio.run(judge_responses(collected, renamed, None)).done == 4  # same model id: judgements still current
    another = JudgeConfig(base_url=server.base_url, model="judge-2")
    assert asyncio.run(judge_responses(collected, another, None)).done == 14  # another judge model judges afresh
    assert len(read_records(collected.judgements_path)) == 14 + 4 + 4 + 14


def test_a_text_only_judge_gets_no_image(server: FakeServer, collected: CollectionDir) -> None:
    before = len(server.state.requests)
    asyncio.run(judge_responses(collected, judge_config(server, multimodal=False), None))
    assert all(isinstance(r["body"]["messages"][-1]["content"], str) for r in judge_requests(server, before))


def test_the_judge_may_not_judge_itself(server: FakeServer, collected: CollectionDir) -> None:
    selfish = JudgeConfig(base_url=server.base_url, model="GOOD")  # the model id of 'alpha', any case
    with pytest.raises(SelfJudgingError, match="alpha"):
        asyncio.run(judge_responses(collected, selfish, None))
    assert not collected.judgements_path.exists()
    by_name = JudgeConfig(name="beta", base_url=server.base_url, model="judge")
    with pytest.raises(SelfJudgingError, match="beta"):
        asyncio.run(judge_responses(collected, by_name, None))
    tally = asyncio.run(judge_responses(collected, selfish, None, allow_self_judging=True))
    assert tally.done == 14


def test_collection_failures_and_unjudged_answers_are_counted(server: FakeServer, collected: CollectionDir) -> None:
    report = write_judged_dataset(collected, judge_config(server))
    assert report.responses == 0 and report.not_judged == 14 and report.left_out == 16
    assert check_dataset(collected.root)[1] == []


def test_templates() -> None:
    template = load_template()
    assert template.startswith("You are a helpful and precise assistant") and template.endswith("Score: ")
    prompt = render_prompt(template, question="What is {x}?", reference=None, prediction="{question} is a placeholder")
    assert "[Question] What is {x}?" in prompt and "[Model Answer] {question} is a placeholder" in prompt
    assert NO_REFERENCE in prompt


def test_custom_template_must_hold_every_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("Rate {prediction} for {question}.")
    with pytest.raises(ConfigError, match="reference"):
        load_template(path)
    path.write_text("Q: {question}\nRef: {reference}\nA: {prediction}\nScore 1-5:")
    assert load_template(path).endswith("Score 1-5:")
