"""The study database: participants, sessions, queries and ratings in SQLite; images as files by content hash.

The database is one of ``ecvl_router.sqlite_db`` (WAL mode, ``synchronous=FULL``, numbered migrations): a
committed row survives a crash or a restart of the server, readers (``ecvl-router study-report``) never block
writers, and concurrent writers (threads or processes) wait for each other. Every operation opens its own
short connection, so the store may be used from any thread.

Images are written beside the database, in ``<database stem>-images/<sha256[:2]>/<sha256>.<ext>``; the
database keeps only the hash.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecvl_router.sqlite_db import connect, open_database, transaction, write_file_once
from ecvl_router.study.assignment import assign_policy

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE study_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE participants (id TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            participant_id TEXT NOT NULL REFERENCES participants(id),
            scenario TEXT NOT NULL,
            mes REAL NOT NULL,
            policy TEXT NOT NULL,
            slot INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (participant_id, scenario),
            UNIQUE (scenario, slot)
        )""",
        """CREATE TABLE queries (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            created_at TEXT NOT NULL,
            question TEXT NOT NULL,
            image_sha256 TEXT,
            image_format TEXT,
            image_name TEXT,
            status TEXT NOT NULL CHECK (status IN ('asked', 'answered', 'failed', 'interrupted')),
            request_id TEXT,
            decision TEXT,
            route TEXT,
            model TEXT,
            p REAL,
            tau REAL,
            fallback INTEGER,
            router_ms REAL,
            first_token_ms REAL,
            latency_ms REAL,
            answer TEXT,
            error TEXT,
            finished_at TEXT
        )""",
        "CREATE INDEX queries_by_session ON queries (session_id)",
        """CREATE TABLE ratings (
            query_id TEXT PRIMARY KEY REFERENCES queries(id),
            created_at TEXT NOT NULL,
            scale TEXT NOT NULL CHECK (scale IN ('score', 'yes_no')),
            score INTEGER CHECK (score BETWEEN 1 AND 10),
            meets INTEGER CHECK (meets IN (0, 1)),
            CHECK ((scale = 'score' AND score IS NOT NULL AND meets IS NULL)
                OR (scale = 'yes_no' AND meets IS NOT NULL AND score IS NULL))
        )""",
    ),
)
"""Schema migrations; migration ``i`` brings ``user_version`` from ``i`` to ``i + 1``. Append, never edit."""

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ValueError):
    """The database cannot serve this study, or a request does not fit what is stored."""


class RecordNotFound(StoreError):
    """No session or query with the given id."""


@dataclass(frozen=True)
class Session:
    """One participant in one scenario, with the policy assigned to them (never shown to the participant)."""

    id: str
    participant_id: str
    scenario: str
    mes: float
    policy: str
    asked: int
    rated: int


@dataclass(frozen=True)
class StoredImage:
    """An image file beside the database: its content hash, format (file extension) and original name."""

    sha256: str
    format: str
    name: str | None = None


@dataclass(frozen=True)
class Answer:
    """What became of a query: filled in when its stream ends."""

    status: str
    request_id: str | None = None
    decision: str | None = None
    route: str | None = None
    model: str | None = None
    p: float | None = None
    tau: float | None = None
    fallback: bool | None = None
    router_ms: float | None = None
    first_token_ms: float | None = None
    latency_ms: float | None = None
    text: str | None = None
    error: str | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class StudyStore:
    """The SQLite study database at ``path`` (created and migrated on open)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.images_dir = self.path.with_name(f"{self.path.stem}-images")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with connect(self.path) as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with connect(self.path) as connection, transaction(connection):
            yield connection

    def migrate(self) -> int:
        """Apply the migrations the database lacks (in WAL mode); returns how many ran (0 when it is up to date)."""
        return open_database(self.path, MIGRATIONS, StoreError)

    def schema_version(self) -> int:
        with self._connection() as connection:
            return connection.execute("PRAGMA user_version").fetchone()[0]

    # ------------------------------------------------------------------ study settings
    def bind(self, policies: Sequence[str], seed: int) -> None:
        """Record the study's policies and seed, or check them against those recorded.

        The balanced assignment depends on both: once a session exists, changing them would unbalance the study.
        """
        wanted = {"policies": json.dumps(list(policies)), "seed": json.dumps(seed)}
        with self._transaction() as connection:
            stored = dict(connection.execute("SELECT key, value FROM study_meta").fetchall())
            started = connection.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] > 0
            for key, value in wanted.items():
                if key not in stored or not started:
                    connection.execute("INSERT OR REPLACE INTO study_meta (key, value) VALUES (?, ?)", (key, value))
                elif stored[key] != value:
                    raise StoreError(
                        f"{self.path}: this study was started with {key} {stored[key]}, the configuration now says {value}; "
                        "the balanced assignment cannot change midway: keep the settings or start a new database"
                    )

    def policies(self) -> list[str]:
        """The policies recorded by :meth:`bind` (empty before)."""
        with self._connection() as connection:
            row = connection.execute("SELECT value FROM study_meta WHERE key = 'policies'").fetchone()
        return json.loads(row[0]) if row else []

    # ------------------------------------------------------------------ sessions
    def open_session(self, participant_id: str, scenario: str, mes: float, seed: int) -> Session:
        """The participant's session in ``scenario``: the existing one, or a new one with the next balanced policy."""
        policies = self.policies()
        if not policies:
            raise StoreError(f"{self.path}: no policies recorded; call bind() first")
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT id FROM sessions WHERE participant_id = ? AND scenario = ?", (participant_id, scenario)
            ).fetchone()
            if row is None:
                connection.execute("INSERT OR IGNORE INTO participants (id, created_at) VALUES (?, ?)", (participant_id, now_iso()))
                slot = connection.execute("SELECT COUNT(*) FROM sessions WHERE scenario = ?", (scenario,)).fetchone()[0]
                session_id = uuid.uuid4().hex
                connection.execute(
                    "INSERT INTO sessions (id, participant_id, scenario, mes, policy, slot, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (session_id, participant_id, scenario, mes, assign_policy(policies, seed, scenario, slot), slot, now_iso()),
                )
            else:
                session_id = row[0]
        return self.session(session_id)

    def session(self, session_id: str) -> Session:
        """A session with its counts of asked and rated queries; StoreError when there is none."""
        with self._connection() as connection:
            row = connection.execute(
                """SELECT s.*, COUNT(q.id) AS asked, COUNT(r.query_id) AS rated
                   FROM sessions s LEFT JOIN queries q ON q.session_id = s.id LEFT JOIN ratings r ON r.query_id = q.id
                   WHERE s.id = ? GROUP BY s.id""",
                (session_id,),
            ).fetchone()
        if row is None:
            raise RecordNotFound(f"no study session {session_id!r}")
        return Session(row["id"], row["participant_id"], row["scenario"], row["mes"], row["policy"], row["asked"], row["rated"])

    # ------------------------------------------------------------------ queries and ratings
    def add_query(self, session_id: str, question: str, image: StoredImage | None) -> str:
        """Record a question as asked (before it is routed) and return its id."""
        query_id = uuid.uuid4().hex
        digest, extension, name = (image.sha256, image.format, image.name) if image else (None, None, None)
        with self._transaction() as connection:
            connection.execute(
                """INSERT INTO queries (id, session_id, created_at, question, image_sha256, image_format, image_name, status)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'asked')""",
                (query_id, session_id, now_iso(), question, digest, extension, name),
            )
        return query_id

    def finish_query(self, query_id: str, answer: Answer) -> None:
        """Record the routing decision, who answered, the timings and the answer (or the error)."""
        with self._transaction() as connection:
            connection.execute(
                """UPDATE queries SET status = ?, request_id = ?, decision = ?, route = ?, model = ?, p = ?, tau = ?,
                   fallback = ?, router_ms = ?, first_token_ms = ?, latency_ms = ?, answer = ?, error = ?, finished_at = ?
                   WHERE id = ?""",
                (answer.status, answer.request_id, answer.decision, answer.route, answer.model, answer.p, answer.tau,
                 None if answer.fallback is None else int(answer.fallback), answer.router_ms, answer.first_token_ms,
                 answer.latency_ms, answer.text, answer.error, now_iso(), query_id),
            )

    def query(self, query_id: str) -> dict[str, Any]:
        """A query's row with its session's scenario and policy; StoreError when there is none."""
        with self._connection() as connection:
            row = connection.execute(
                """SELECT q.*, s.participant_id, s.scenario, s.policy, s.mes FROM queries q JOIN sessions s ON s.id = q.session_id
                   WHERE q.id = ?""",
                (query_id,),
            ).fetchone()
        if row is None:
            raise RecordNotFound(f"no study query {query_id!r}")
        return dict(row)

    def rate(self, query_id: str, *, score: int | None = None, meets: bool | None = None) -> None:
        """Record the one rating of an answered query; StoreError when it is unanswered or already rated."""
        if (score is None) == (meets is None):
            raise ValueError("give a score or meets, not both")
        with self._transaction() as connection:
            row = connection.execute("SELECT status FROM queries WHERE id = ?", (query_id,)).fetchone()
            if row is None:
                raise RecordNotFound(f"no study query {query_id!r}")
            if row["status"] != "answered":
                raise StoreError(f"query {query_id!r} has no answer to rate (it is {row['status']})")
            if connection.execute("SELECT 1 FROM ratings WHERE query_id = ?", (query_id,)).fetchone():
                raise StoreError(f"query {query_id!r} is already rated; a rating cannot be changed")
            connection.execute(
                "INSERT INTO ratings (query_id, created_at, scale, score, meets) VALUES (?, ?, ?, ?, ?)",
                (query_id, now_iso(), "score" if score is not None else "yes_no", score, None if meets is None else int(meets)),
            )

    # ------------------------------------------------------------------ images
    def save_image(self, data: bytes, format: str, name: str | None = None) -> StoredImage:
        """Write image bytes under their sha256 (once; durable before this returns)."""
        image = StoredImage(hashlib.sha256(data).hexdigest(), format.lower(), name)
        write_file_once(self.image_path(image), data)
        return image

    def image_path(self, image: StoredImage) -> Path:
        return self.images_dir / image.sha256[:2] / f"{image.sha256}.{image.format}"
