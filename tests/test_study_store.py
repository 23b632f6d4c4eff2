"""The study database: migrations, restart safety (also after a killed process), concurrent writers, images."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ecvl_router.study.store import SCHEMA_VERSION, Answer, StoreError, StudyStore

POLICIES = ["ecvl", "all-large", "all-small", "win-soft-1"]


def answered(route: str = "edge", latency_ms: float = 1200.0) -> Answer:
    return Answer("answered", request_id="r", decision=route, route=route, model=f"{route}-model", p=0.7, tau=0.5,
                  fallback=False, router_ms=9.5, first_token_ms=300.0, latency_ms=latency_ms, text="an answer")


def new_store(path: Path) -> StudyStore:
    store = StudyStore(path)
    store.bind(POLICIES, seed=0)
    return store


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return {name: connection.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
                for name in ("participants", "sessions", "queries", "ratings")}


def test_new_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    store = new_store(tmp_path / "study.db")
    assert store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"participants", "sessions", "queries", "ratings", "study_meta"} <= tables


def test_reopening_loses_nothing_and_migrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    store = new_store(path)
    session = store.open_session("P1", "quality", 7, seed=0)
    image = store.save_image(b"\x89PNG fake bytes", "PNG", "photo.png")
    asked = store.add_query(session.id, "What is this?", image)
    store.finish_query(asked, answered())
    store.rate(asked, score=8)
    unanswered = store.add_query(session.id, "And this?", None)
    del store

    reopened = StudyStore(path)
    assert reopened.migrate() == 0 and reopened.schema_version() == SCHEMA_VERSION
    reopened.bind(POLICIES, seed=0)
    assert reopened.open_session("P1", "quality", 7, seed=0) == reopened.session(session.id)
    assert reopened.session(session.id).asked == 2 and reopened.session(session.id).rated == 1
    row = reopened.query(asked)
    assert row["status"] == "answered" and row["route"] == "edge" and row["latency_ms"] == 1200.0 and row["image_name"] == "photo.png"
    assert reopened.query(unanswered)["status"] == "asked"
    assert reopened.image_path(image).read_bytes() == b"\x89PNG fake bytes"
    assert table_counts(path) == {"participants": 1, "sessions": 1, "queries": 2, "ratings": 1}


def test_rows_committed_by_a_killed_process_survive(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    script = textwrap.dedent(f"""
        import os, signal
        from ecvl_router.study.store import Answer, StudyStore
        store = StudyStore({str(path)!r})
        store.bind({POLICIES!r}, seed=0)
        session = store.open_session("P1", "speed", 5, seed=0)
        for index in range(20):
            query = store.add_query(session.id, f"question {{index}}", None)
            store.finish_query(query, Answer("answered", route="cloud", latency_ms=100.0 + index))
            store.rate(query, score=1 + index % 10)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()
    assert table_counts(path) == {"participants": 1, "sessions": 1, "queries": 20, "ratings": 20}
    assert StudyStore(path).migrate() == 0


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    new_store(path)

    def participant(index: int) -> None:
        store = StudyStore(path)  # each writer has its own store, like separate processes
        session = store.open_session(f"P{index}", "quality", 7, seed=0)
        for number in range(6):
            query = store.add_query(session.id, f"q{number}", store.save_image(f"image {number}".encode(), "png"))
            store.finish_query(query, answered())
            store.rate(query, score=5)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(participant, range(8)))
    assert table_counts(path) == {"participants": 8, "sessions": 8, "queries": 48, "ratings": 48}
    with sqlite3.connect(path) as connection:
        slots = sorted(row[0] for row in connection.execute("SELECT slot FROM sessions"))
    assert slots == list(range(8))
    assert len(list((tmp_path / "study-images").rglob("*.png"))) == 6


def test_images_are_stored_once_by_content_hash(tmp_path: Path) -> None:
    store = new_store(tmp_path / "study.db")
    first = store.save_image(b"same bytes", "JPEG", "a.jpg")
    second = store.save_image(b"same bytes", "JPEG", "b.jpg")
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    files = list(store.images_dir.rglob("*"))
    assert [f.name for f in files if f.is_file()] == [f"{first.sha256}.jpeg"]
    assert store.image_path(first).parent.name == first.sha256[:2]


def test_a_rating_is_given_once_and_only_to_an_answer(tmp_path: Path) -> None:
    store = new_store(tmp_path / "study.db")
    session = store.open_session("P1", "quality", 7, seed=0)
    query = store.add_query(session.id, "q", None)
    with pytest.raises(StoreError, match="no answer to rate"):
        store.rate(query, score=5)
    store.finish_query(query, answered())
    store.rate(query, meets=True)
    with pytest.raises(StoreError, match="already rated"):
        store.rate(query, score=3)
    with pytest.raises(StoreError, match="no study query"):
        store.rate("missing", score=3)
    with pytest.raises(sqlite3.IntegrityError):
        store.rate(store_answered_query(store, session.id), score=11)


def store_answered_query(store: StudyStore, session_id: str) -> str:
    query = store.add_query(session_id, "q", None)
    store.finish_query(query, answered())
    return query


def test_changing_the_policies_midway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    new_store(path).bind(["ecvl", "all-small"], seed=0)  # before the first session, the settings may change
    assert StudyStore(path).policies() == ["ecvl", "all-small"]
    new_store(path).open_session("P1", "quality", 7, seed=0)
    with pytest.raises(StoreError, match="cannot change midway"):
        StudyStore(path).bind(["ecvl", "all-large"], seed=0)
    with pytest.raises(StoreError, match="seed"):
        StudyStore(path).bind(POLICIES, seed=1)


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    new_store(path)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this ecvl-router"):
        StudyStore(path)


def test_unknown_session_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no study session"):
        new_store(tmp_path / "study.db").session("nope")
