"""From captured gateway traffic to a judged dataset: `data from-capture`, `data validate`, `judge` (a loopback fake
judge), and feedback as human ratings that `agreement` compares with the judge."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from ecvl_router.collect.from_capture import capture_group
from ecvl_router.data import load_rsd
from tests.fake_openai import FakeServer, judge_output
from tests.serve_support import CLOUD, EDGE, data_uri, demo_data, image_message, tiny_bundle  # noqa: F401
from tests.test_collect_cli import Run
from tests.test_serve_capture import capturing, wait_until
from tests.test_serve_gateway import client_for, items, router, sims  # noqa: F401

QUERIES = 6
RATED = 4


@pytest.fixture(scope="module")
def captured(router, sims, items, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A capture of six requests (both scenarios, images and text), each with its shadow answer, four rated."""
    folder = tmp_path_factory.mktemp("capture") / "capture"
    chosen = [item for item in items if item["path"] is not None][:3] + [item for item in items if item["path"] is None][:3]
    sent = {}
    with capturing(router, sims, folder) as (gateway, store):
        client = client_for(gateway)
        for index, item in enumerate(chosen):
            messages = image_message(item["question"], data_uri(item["path"])) if item["path"] else [{"role": "user", "content": item["question"]}]
            answer = client.chat.completions.create(model=f"ecvl-router:{'quality' if index % 2 else 'speed'}", messages=messages)
            sent[answer.ecvl["request_id"]] = (item, answer.ecvl["route"])
        for index, request_id in enumerate(list(sent)[:RATED]):
            rated = httpx.post(gateway.url + "/v1/feedback", json={"request_id": request_id, "score": 3 + index, "comment": f"note {index}"})
            assert rated.status_code == 200, rated.text
        wait_until(lambda: len(store.rows("answers")) == 2 * QUERIES, "every shadow answer")
    return {"folder": folder, "sent": sent}


def write_judge(path: Path, server: FakeServer) -> Path:
    path.write_text(f"base_url: {server.base_url}\nmodel: judge\nretry: {{backoff_base_s: 0.01}}\n")
    return path


def test_capture_to_dataset_to_judge_to_agreement(captured: dict, tmp_path: Path) -> None:
    out = tmp_path / "rsd"
    converted = Run(["data", "from-capture", str(captured["folder"]), "--out", str(out)])
    assert converted.exit_code == 0, converted.output
    assert f"wrote {QUERIES} items" in converted.output and f"{RATED} feedback ratings" in converted.output
    validated = Run(["data", "validate", str(out)])
    assert validated.exit_code == 0 and f"{QUERIES} items, 0 responses" in validated.output, validated.output

    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert {item["item_id"] for item in items} == set(captured["sent"])
    for item in items:
        source, _ = captured["sent"][item["item_id"]]
        assert item["question"] == source["question"] and item["source"] == "capture" and item["reference"] is None
        if source["path"] is None:
            assert item["image"] is None and item.get("group") is None  # a group of its own
        else:
            assert (out / item["image"]).read_bytes() == source["path"].read_bytes()
            assert item["group"] == "image:" + hashlib.sha256(source["path"].read_bytes()).hexdigest()  # one group per image

    with FakeServer() as judge_server:
        judge = write_judge(tmp_path / "judge.yaml", judge_server)
        judged = Run(["judge", "--data", str(out), "--judge", str(judge)])
        assert judged.exit_code == 0, judged.output
        assert f"wrote {2 * QUERIES} judged responses" in judged.output and "is a valid Response Score Dataset" in judged.output
        prompts = [request for request in judge_server.state.requests if request["model"] == "judge"]
        assert len(prompts) == 2 * QUERIES
        with_image = [r for r in prompts if isinstance(r["body"]["messages"][-1]["content"], list)]
        assert len(with_image) == 2 * 3 and "Scoring Guidelines:" in with_image[0]["body"]["messages"][-1]["content"][-1]["text"]

        assert Run(["data", "validate", str(out)]).exit_code == 0
        rsd = load_rsd(out)
        responses = rsd.responses.set_index(["item_id", "model"])
        for request_id, (source, route) in captured["sent"].items():
            for model, answer in ((EDGE, source["edge_answer"]), (CLOUD, source["cloud_answer"])):
                row = responses.loc[(request_id, model)]
                assert row["response"] == answer and row["score"] == int(judge_output(answer).split("\n")[0])
                assert row["latency_s"] > 0 and row["output_tokens"] > 0 and row["input_tokens"] > 0
        assert len(rsd.pair(EDGE, CLOUD)) == QUERIES

        with open(out / "human-ratings.csv", newline="") as handle:
            ratings = list(csv.DictReader(handle))
        assert len(ratings) == RATED and {row["rater"] for row in ratings} == {"feedback"}
        for row in ratings:
            _, route = captured["sent"][row["item_id"]]
            assert row["model"] == (EDGE if route == "edge" else CLOUD)  # the answer the client got and rated
        compared = Run(["agreement", "--judge", str(out), "--human", str(out / "human-ratings.csv"), "--json"])
        assert compared.exit_code == 0, compared.output
        report = json.loads(compared.output[compared.output.index("{"):])
        assert report["n_responses"] == RATED and report["n_raters"] == 1 and report["unmatched_ratings"] == 0

        # running both again changes nothing and judges nothing new
        before = (out / "items.jsonl").read_bytes(), (out / "raw" / "results.jsonl").read_bytes()
        assert Run(["data", "from-capture", str(captured["folder"]), "--out", str(out)]).exit_code == 0
        assert ((out / "items.jsonl").read_bytes(), (out / "raw" / "results.jsonl").read_bytes()) == before
        asked = len(judge_server.state.requests)
        assert Run(["judge", "--data", str(out), "--judge", str(judge)]).exit_code == 0
        assert len(judge_server.state.requests) == asked
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["collection"]["producer"] == "ecvl-router data from-capture"


def test_from_capture_errors_name_the_folder(captured: dict, tmp_path: Path) -> None:
    missing = Run(["data", "from-capture", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert missing.exit_code == 1 and "not a capture folder" in missing.output and not (tmp_path / "out").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "capture.db").write_bytes(b"this is not SQLite" * 100)
    corrupt = Run(["data", "from-capture", str(broken), "--out", str(tmp_path / "out")])
    assert corrupt.exit_code == 1 and "cannot be read" in corrupt.output and str(broken) in corrupt.output

    out = tmp_path / "changed"
    assert Run(["data", "from-capture", str(captured["folder"]), "--out", str(out)]).exit_code == 0
    lines = (out / "items.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    (out / "items.jsonl").write_text("\n".join([json.dumps({**first, "question": "edited"}), *lines[1:]]) + "\n")
    refused = Run(["data", "from-capture", str(captured["folder"]), "--out", str(out)])
    assert refused.exit_code == 1 and first["item_id"] in refused.output and "differs" in refused.output


def test_captured_queries_about_one_image_share_a_group() -> None:
    rows = [{"image_sha256": "ab" * 32}, {"image_sha256": "ab" * 32}, {"image_sha256": "cd" * 32}, {"image_sha256": None}]
    groups = [capture_group(row) for row in rows]
    assert groups[0] == groups[1] != groups[2] and groups[3] is None
