"""The study page in a real browser: Debian's chromium, headless, driven by Playwright.

A participant on a phone-sized screen starts a session, uploads an image, asks about it, waits for the
streamed answer, rates it with the keyboard, and sees which model answered; the test then finds the
rating in the SQLite database. The page's screenshot is saved in the test's output folder.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from ecvl_router.data import load_rsd
from tests.serve_support import CLOUD, EDGE, demo_data, tiny_bundle  # noqa: F401
from tests.study_support import study_stack

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def test_participant_uploads_asks_reads_the_stream_and_rates(tiny_bundle: Path, demo_data: Path, tmp_path: Path) -> None:
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium not found (install Debian's package: apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    rsd = load_rsd(demo_data)
    item = next(row for row in rsd.items.to_dict("records") if row["image"] is not None)
    image = rsd.image_path(item["image"])
    answers = rsd.responses[rsd.responses["item_id"] == item["item_id"]].set_index("model")["response"]
    database = tmp_path / "study" / "study.db"

    with study_stack(tiny_bundle, demo_data, database, latency_scale=0.2) as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's screen
            console_errors: list[str] = []
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.goto(stack["url"] + "/study")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")

            page.get_by_label("Participant id").fill("browser-1")
            page.get_by_label("Speed first").check()
            page.get_by_role("button", name="Start").click()
            expect(page.locator("#session-info")).to_contain_text("Participant browser-1")
            expect(page.get_by_role("button", name="Start")).to_be_disabled()  # no second start mid-session
            expect(page.get_by_label("Participant id")).to_be_disabled()
            expect(page.locator("#demo-images input").first).to_be_checked()  # an image, not "No image", by default

            page.get_by_label("Image file").set_input_files(str(image))
            page.locator("#demo-images input").first.check()
            assert page.locator("#image-file").input_value() == ""  # the old file's name does not linger
            page.get_by_label("Image file").set_input_files(str(image))
            expect(page.get_by_label("Upload an image")).to_be_checked()
            expect(page.locator("#preview")).to_be_visible()
            page.get_by_label("Question", exact=True).fill(item["question"])
            page.get_by_role("button", name="Ask").click()

            expect(page.locator("#answer-time")).to_contain_text("Answered in", timeout=60_000)
            shown = page.locator("#answer-text").inner_text()
            assert shown.strip() in {answers[EDGE].strip(), answers[CLOUD].strip()}
            expect(page.locator("#reveal")).to_be_hidden()  # who answered is told only after rating
            assert EDGE not in page.content().replace(shown, "") and CLOUD not in page.content().replace(shown, "")

            expect(page.get_by_label(re.compile(r"^1 Completely unable"))).to_be_focused()  # focus moved to the rating
            page.keyboard.press("Space")
            for _ in range(6):
                page.keyboard.press("ArrowDown")
            expect(page.get_by_label(re.compile(r"^7 Answer is accurate"))).to_be_checked()
            page.get_by_role("button", name="Submit rating").focus()
            page.keyboard.press("Enter")
            expect(page.locator("#reveal")).to_contain_text("This answer came from")
            expect(page.locator("#reveal")).to_be_in_viewport()  # scrolled to, not left below the fold
            assert console_errors == []  # no favicon 404 or any other error
            revealed = page.locator("#reveal").inner_text()
            page.screenshot(path=str(tmp_path / "study-page.png"), full_page=True)
        finally:
            browser.close()

    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            """SELECT s.participant_id, s.scenario, q.*, r.score, r.scale FROM ratings r
               JOIN queries q ON q.id = r.query_id JOIN sessions s ON s.id = q.session_id"""
        ).fetchone()
    assert row is not None, "the rating is not in the database"
    assert (row["participant_id"], row["scenario"], row["score"], row["scale"]) == ("browser-1", "speed", 7, "score")
    assert row["question"] == item["question"] and row["status"] == "answered" and row["answer"].strip() == shown.strip()
    assert row["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest() and row["image_name"] == image.name
    assert row["model"] in revealed and row["answer"] == answers[row["model"]]
    assert ("edge" in revealed) == (row["route"] == "edge")
    assert (tmp_path / "study-page.png").stat().st_size > 10_000
