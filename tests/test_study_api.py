"""The study served by the gateway: page and assets, sessions, asking with a streamed answer, rating.

A real gateway app (uvicorn, 127.0.0.1) with the study enabled sits in front of two simulated backends;
the tiny bundle's pinned thresholds make every policy's route known in advance.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

import ecvl_router.study
from ecvl_router.data import load_rsd
from ecvl_router.serve.conversation import CLOUD_MARKER
from tests.serve_support import CLOUD, EDGE, demo_data, tiny_bundle  # noqa: F401
from tests.study_support import POLICY_ROUTES, sse_events, study_stack

MODELS = {"edge": EDGE, "cloud": CLOUD}


@pytest.fixture(scope="module")
def stack(tiny_bundle: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    with study_stack(tiny_bundle, demo_data, tmp_path_factory.mktemp("study") / "study.db", demo_data=demo_data, demo_images=4) as running:
        yield running


@pytest.fixture(scope="module")
def recorded(demo_data: Path) -> dict[tuple[str, str], str]:
    """(question, model) -> the demo dataset's recorded answer."""
    rsd = load_rsd(demo_data)
    questions = rsd.items.set_index("item_id")["question"]
    return {(questions[row.item_id], row.model): row.response for row in rsd.responses.itertuples()}


def api(stack, path: str) -> str:
    return f"{stack['url']}/study/api{path}"


def start(stack, participant: str, scenario: str = "quality") -> dict:
    response = httpx.post(api(stack, "/sessions"), json={"participant": participant, "scenario": scenario})
    assert response.status_code == 200, response.text
    return response.json()


def policy_of(stack, session_id: str) -> str:
    with sqlite3.connect(stack["database"]) as connection:
        return connection.execute("SELECT policy FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]


def png_data_uri(colour: tuple[int, int, int]) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "PNG")
    data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode(), data


# ---------------------------------------------------------------------- page
def test_page_and_assets_are_served_from_the_package_without_external_urls(stack) -> None:
    page = httpx.get(stack["url"] + "/study")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("study.js", "study.css"):
        response = httpx.get(f"{stack['url']}/study/static/{asset}")
        assert response.status_code == 200 and response.text
        assert not re.search(r"https?://", response.text), f"{asset} refers to an external URL"
    assert not re.search(r"https?://", page.text)
    labels = set(re.findall(r'<label for="([^"]+)"', page.text))
    assert {"participant", "question", "image-file"} <= labels  # every input of the page has a label
    icon = httpx.get(stack["url"] + "/study/static/favicon.svg")  # declared by the page: no /favicon.ico 404
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml" and b"<svg" in icon.content
    assert '<link rel="icon" href="/study/static/favicon.svg"' in page.text
    assert not re.search(r'id="image-none"[^>]*checked', page.text)  # not "No image" by default in a study about images
    assert httpx.get(stack["url"] + "/study/static/../app.py").status_code == 404
    assert httpx.get(stack["url"] + "/study/static/secret.txt").status_code == 404


def test_the_page_script_parses() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found")
    script = Path(ecvl_router.study.__file__).parent / "static" / "study.js"
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_settings_list_scenarios_rubric_and_demo_images(stack) -> None:
    settings = httpx.get(api(stack, "/settings")).json()
    assert [s["name"] for s in settings["scenarios"]] == ["quality", "speed"]
    rubric = settings["rating"]["rubric"]
    assert settings["rating"]["scale"] == "score" and [r["score"] for r in rubric] == list(range(1, 11))
    assert rubric[0]["text"].startswith("Completely unable to answer") and "exceeds expectations" in rubric[9]["text"]
    assert not any("reference" in line["text"].lower() for line in rubric)  # participants never see a reference
    assert len(settings["demo_images"]) == 4 and all(image["question"] for image in settings["demo_images"])
    image = httpx.get(f"{stack['url']}/study/demo-images/{settings['demo_images'][0]['id']}")
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    Image.open(io.BytesIO(image.content)).verify()
    assert "policy" not in json.dumps(settings) and "ecvl" not in json.dumps(settings)


# ---------------------------------------------------------------------- sessions
def test_sessions_are_assigned_balanced_policies_and_never_reveal_them(stack) -> None:
    sessions = [start(stack, f"balance-{index}", "speed") for index in range(8)]
    assert all("policy" not in s for s in sessions)
    assert Counter(policy_of(stack, s["session"]) for s in sessions) == {"ecvl": 2, "all-large": 2, "all-small": 2, "win-soft-1": 2}
    again = start(stack, "balance-3", "speed")
    assert again["session"] == sessions[3]["session"]
    generated = httpx.post(api(stack, "/sessions"), json={"scenario": "quality"}).json()
    assert re.fullmatch(r"P-[0-9A-F]{6}", generated["participant"])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"participant": "has space", "scenario": "quality"}, "participant"),
        ({"participant": "ok", "scenario": "nope"}, "scenario"),
        ({"participant": "ok"}, "scenario"),
        ({"participant": "ok", "scenario": "quality", "policy": "ecvl"}, "policy"),
    ],
)
def test_bad_session_requests_name_the_field(stack, body: dict, field: str) -> None:
    response = httpx.post(api(stack, "/sessions"), json=body)
    assert response.status_code == 400 and field in response.json()["error"]["message"]


# ---------------------------------------------------------------------- asking and rating
def test_each_policy_routes_streams_records_and_reveals_after_rating(stack, recorded) -> None:
    settings = httpx.get(api(stack, "/settings")).json()
    demo = settings["demo_images"][0]
    seen = set()
    index = 0
    while len(seen) < 8:  # every (scenario, policy) pair, by starting sessions until each was assigned
        scenario = ("quality", "speed")[index % 2]
        session = start(stack, f"asker-{index}", scenario)
        index += 1
        policy = policy_of(stack, session["session"])
        if (scenario, policy) in seen:
            continue
        seen.add((scenario, policy))
        response = httpx.post(api(stack, f"/sessions/{session['session']}/ask"), json={"question": demo["question"], "demo_image": demo["id"]})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        names = [name for name, _ in events]
        assert names[0] == "query" and names[-1] == "done" and "delta" in names
        body = json.dumps([data for _, data in events])
        assert "route" not in body and EDGE not in body and CLOUD not in body and "ecvl" not in body  # nothing told before rating
        answer = "".join(data["text"] for name, data in events if name == "delta")
        route = POLICY_ROUTES[(scenario, policy)]
        assert answer == recorded[(demo["question"], MODELS[route])] and CLOUD_MARKER not in answer

        query = events[0][1]["query"]
        assert response.headers["x-study-query"] == query
        reveal = httpx.post(api(stack, f"/queries/{query}/rating"), json={"score": 6})
        assert reveal.status_code == 200 and reveal.json()["route"] == route and reveal.json()["model"] == MODELS[route]
        with sqlite3.connect(stack["database"]) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute("SELECT * FROM queries q JOIN ratings r ON r.query_id = q.id WHERE q.id = ?", (query,)).fetchone()
        assert row["status"] == "answered" and row["route"] == route and row["model"] == MODELS[route] and row["score"] == 6
        assert row["answer"] == answer and row["latency_ms"] >= row["first_token_ms"] > 0 and row["image_name"] == demo["id"]
        assert row["fallback"] == 0 and (row["p"] >= row["tau"]) == (route == "edge")
        if policy in ("all-large", "all-small"):
            assert (row["p"], row["tau"]) == (1.0 if route == "edge" else 0.0, 0.5)
    log = [json.loads(line) for line in stack["log"].read_text().splitlines()]
    assert {record["scenario"] for record in log} >= {f"{s}/{p}" for s, p in seen}  # the decision log has them too


def test_uploaded_images_are_stored_by_content_hash(stack) -> None:
    session = start(stack, "uploader", "speed")
    uri, data = png_data_uri((10, 200, 30))
    response = httpx.post(api(stack, f"/sessions/{session['session']}/ask"),
                          json={"question": "What colour is this?", "image": uri, "image_name": "green.png"})
    assert sse_events(response)[-1][0] == "done"
    digest = hashlib.sha256(data).hexdigest()
    stored = stack["database"].parent / "study-images" / digest[:2] / f"{digest}.png"
    assert stored.read_bytes() == data
    with sqlite3.connect(stack["database"]) as connection:
        row = connection.execute("SELECT image_sha256, image_name, question FROM queries WHERE id = ?", (response.headers["x-study-query"],)).fetchone()
    assert row == (digest, "green.png", "What colour is this?")


def test_a_rating_cannot_be_changed_and_must_fit_the_scale(stack) -> None:
    session = start(stack, "rater", "speed")
    response = httpx.post(api(stack, f"/sessions/{session['session']}/ask"), json={"question": "Anything?"})
    query = response.headers["x-study-query"]
    for body in ({"score": 11}, {"score": 0}, {"meets": True}, {"score": "high"}):
        bad = httpx.post(api(stack, f"/queries/{query}/rating"), json=body)
        assert bad.status_code == 400, body
    assert httpx.post(api(stack, f"/queries/{query}/rating"), json={"score": 3}).status_code == 200
    again = httpx.post(api(stack, f"/queries/{query}/rating"), json={"score": 9})
    assert again.status_code == 409 and "cannot be changed" in again.json()["error"]["message"]
    assert httpx.post(api(stack, "/queries/unknown/rating"), json={"score": 3}).status_code == 404


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"question": "   "}, 400, "question is empty"),
        ({"question": "q", "image": "data:image/png;base64,!!!"}, 400, "not valid base64"),
        ({"question": "q", "image": "data:text/plain;base64,aGVsbG8="}, 400, "image type is required"),
        ({"question": "q", "image": "data:image/png;base64,aGVsbG8="}, 400, "not an image"),
        ({"question": "q", "demo_image": "demo-99"}, 400, "no demo image"),
        ({"question": "q", "demo_image": "demo-1", "image": "data:image/png;base64,aGVsbG8="}, 400, "not both"),
        ({"question": "x" * 4001}, 400, "question"),
        ({}, 400, "question"),
    ],
)
def test_bad_questions_are_4xx_and_the_server_keeps_serving(stack, body: dict, status: int, words: str) -> None:
    session = start(stack, "bad-asker", "quality")
    response = httpx.post(api(stack, f"/sessions/{session['session']}/ask"), json=body)
    assert response.status_code == status and words in response.json()["error"]["message"]
    assert httpx.get(stack["url"] + "/healthz").status_code == 200


def test_unknown_session_and_wrong_content_type(stack) -> None:
    missing = httpx.post(api(stack, "/sessions/nope/ask"), json={"question": "q"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_session"
    form = httpx.post(api(stack, "/sessions"), content=b"participant=a", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    broken = httpx.post(api(stack, "/sessions"), content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"


def test_abandoned_and_failed_answers_are_recorded(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    with study_stack(tiny_bundle, demo_data, tmp_path / "study.db", latency_scale=1.0) as slow:
        assert httpx.get(slow["url"] + "/study/", follow_redirects=False).headers["location"] == "/study"
        session = start(slow, "leaver", "quality")
        question = load_rsd(demo_data).items["question"].iloc[0]
        with httpx.stream("POST", api(slow, f"/sessions/{session['session']}/ask"), json={"question": question}, timeout=30) as response:
            query = response.headers["x-study-query"]
            next(response.iter_raw())  # the participant leaves after the first event
        assert wait_for_status(slow["database"], query, "interrupted")

        for server in slow["sims"].values():
            server.stop()
        failed = httpx.post(api(slow, f"/sessions/{session['session']}/ask"), json={"question": "Anyone there?"}, timeout=30)
        assert failed.status_code in (502, 504) and "backend" in failed.json()["error"]["message"]
        with sqlite3.connect(slow["database"]) as connection:
            status, error = connection.execute("SELECT status, error FROM queries WHERE question = 'Anyone there?'").fetchone()
        assert status == "failed" and "backend" in error


def wait_for_status(database: Path, query: str, status: str, timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            if connection.execute("SELECT status FROM queries WHERE id = ?", (query,)).fetchone()[0] == status:
                return True
        time.sleep(0.05)
    return False
