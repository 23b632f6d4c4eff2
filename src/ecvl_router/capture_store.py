"""The capture store: sampled gateway requests, their answers (served and shadow) and client feedback.

A capture folder holds ``capture.db``, an SQLite database of ``ecvl_router.sqlite_db`` (WAL mode,
``synchronous=FULL``), and ``images/``, where each image is a file named by the sha256 of its bytes
(``images/<2 hex>/<sha256>.<ext>``), written once, through a temporary file that is fsynced and renamed into
place, before any row names it. A committed row survives kill -9 of its writer (and a power loss); a
transaction cut short by a kill is rolled back by SQLite when the database is next opened, and a temporary
image file left behind is ignored. Several processes may write the same store: every write is one
transaction that takes the write lock at its start, and writers wait for each other; readers never wait.

Tables: ``captures`` (one row per captured request: the query, the decision, p and tau), ``answers`` (one row
per (request, route): the answer the client got, ``served``, and the other backend's, ``shadow``),
``feedback`` (the client's score of the answer it got; a later one replaces an earlier one) and ``meta``
(the score scale feedback is given on).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecvl_router.sqlite_db import connect, open_database, transaction, write_file_once

DATABASE_FILE = "capture.db"
IMAGES_DIR = "images"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE captures (
            request_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            scenario TEXT NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('edge', 'cloud')),
            p REAL,
            tau REAL NOT NULL,
            mes REAL,
            question TEXT NOT NULL,
            image_sha256 TEXT,
            image_format TEXT,
            stream INTEGER NOT NULL
        )""",
        """CREATE TABLE answers (
            request_id TEXT NOT NULL REFERENCES captures(request_id),
            route TEXT NOT NULL CHECK (route IN ('edge', 'cloud')),
            role TEXT NOT NULL CHECK (role IN ('served', 'shadow')),
            model TEXT NOT NULL,
            model_id TEXT,
            created_at TEXT NOT NULL,
            ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
            text TEXT,
            latency_s REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            error_kind TEXT,
            error_message TEXT,
            PRIMARY KEY (request_id, route),
            CHECK ((ok = 1 AND text IS NOT NULL AND latency_s IS NOT NULL) OR (ok = 0 AND error_kind IS NOT NULL))
        )""",
        """CREATE TABLE feedback (
            request_id TEXT PRIMARY KEY REFERENCES captures(request_id),
            created_at TEXT NOT NULL,
            score REAL NOT NULL,
            comment TEXT
        )""",
    ),
)
"""Schema migrations; migration ``i`` brings ``user_version`` from ``i`` to ``i + 1``. Append, never edit."""

SCHEMA_VERSION = len(MIGRATIONS)


class CaptureStoreError(ValueError):
    """The folder is not a capture store this version can use, or does not fit what it is asked to hold."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class CapturedImage:
    """Encoded image bytes and their file extension (``png``, ``jpeg``...)."""

    data: bytes
    extension: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class CaptureRecord:
    """One captured request: the routed query (last user turn and its first image) and the decision."""

    request_id: str
    scenario: str
    decision: str
    p: float | None
    tau: float
    mes: float | None
    question: str
    image: CapturedImage | None
    stream: bool
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class AnswerRecord:
    """One backend's answer to a captured request (``ok``), or why there is none; ``model`` is the dataset's name."""

    request_id: str
    route: str
    role: str
    model: str
    model_id: str | None
    ok: bool
    text: str | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class FeedbackRecord:
    """A client's score of the answer it got, with an optional comment."""

    request_id: str
    score: float
    comment: str | None
    created_at: str = field(default_factory=now_iso)


StoreRecord = CaptureRecord | AnswerRecord | FeedbackRecord


class CaptureStore:
    """The capture store in ``folder``: created and migrated on open, or (``create=False``) opened only if it exists."""

    def __init__(self, folder: Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DATABASE_FILE
        self.images_dir = self.folder / IMAGES_DIR
        if not self.path.is_file():
            if not create:
                raise CaptureStoreError(f"{self.folder}: not a capture folder (no {DATABASE_FILE}); see docs/serving.md, Capture")
            self.folder.mkdir(parents=True, exist_ok=True)
        open_database(self.path, MIGRATIONS, CaptureStoreError)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A new connection to the database, closed on exit (the writer thread keeps one)."""
        with connect(self.path) as connection:
            yield connection

    # ------------------------------------------------------------------ the score scale
    def bind_scale(self, low: float, high: float) -> None:
        """Record the scale feedback is given on, or check it against the one recorded (CaptureStoreError if it differs)."""
        with self.connection() as connection, transaction(connection):
            for key, value in (("score_min", low), ("score_max", high)):
                connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, repr(float(value))))
            recorded = self._scale(connection)
        if recorded != (float(low), float(high)):
            raise CaptureStoreError(
                f"{self.folder}: its feedback is on the score scale [{recorded[0]:g}, {recorded[1]:g}], the bundle scores on "
                f"[{low:g}, {high:g}]; capture into another folder"
            )

    def scale(self) -> tuple[float, float] | None:
        """The recorded score scale (None: no gateway with a bounded scale has written here)."""
        with self.connection() as connection:
            return self._scale(connection)

    @staticmethod
    def _scale(connection: sqlite3.Connection) -> tuple[float, float] | None:
        values = dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('score_min', 'score_max')").fetchall())
        return (float(values["score_min"]), float(values["score_max"])) if len(values) == 2 else None

    # ------------------------------------------------------------------ writing
    def write(self, records: Sequence[StoreRecord], connection: sqlite3.Connection | None = None) -> list[bool]:
        """Write ``records`` in one transaction (their images first); per record whether it was stored.

        An answer or a feedback whose request was never captured is not stored (False); a request captured
        twice keeps its first record.
        """
        for record in records:
            if isinstance(record, CaptureRecord) and record.image is not None:
                self.save_image(record.image)
        if connection is None:
            with self.connection() as own:
                return self.write(records, own)
        with transaction(connection):
            return [_insert(connection, record) for record in records]

    def save_image(self, image: CapturedImage) -> Path:
        """The image's file, written (durably, atomically) unless it is there already."""
        target = self.image_path(image.sha256, image.extension)
        write_file_once(target, image.data)
        return target

    def image_path(self, sha256: str, extension: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}.{extension}"

    # ------------------------------------------------------------------ reading
    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``captures``, ``answers`` or ``feedback``, in the order written."""
        if table not in ("captures", "answers", "feedback"):
            raise ValueError(f"no table {table!r} in a capture store")
        with self.connection() as connection:
            return [dict(row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY rowid")]

    def integrity(self) -> str:
        """SQLite's ``integrity_check``: ``ok`` for an intact database."""
        with self.connection() as connection:
            return "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))


def _insert(connection: sqlite3.Connection, record: StoreRecord) -> bool:
    if isinstance(record, CaptureRecord):
        image = record.image
        cursor = connection.execute(
            "INSERT OR IGNORE INTO captures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.request_id, record.created_at, record.scenario, record.decision, record.p, record.tau, record.mes,
             record.question, image.sha256 if image else None, image.extension if image else None, int(record.stream)),
        )
    elif isinstance(record, AnswerRecord):
        cursor = connection.execute(
            """INSERT OR REPLACE INTO answers SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
               WHERE EXISTS (SELECT 1 FROM captures WHERE request_id = ?)""",
            (record.request_id, record.route, record.role, record.model, record.model_id, record.created_at, int(record.ok),
             record.text, record.latency_s, record.input_tokens, record.output_tokens, record.error_kind, record.error_message,
             record.request_id),
        )
    else:
        cursor = connection.execute(
            """INSERT INTO feedback SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM captures WHERE request_id = ?)
               ON CONFLICT (request_id) DO UPDATE SET created_at = excluded.created_at, score = excluded.score, comment = excluded.comment""",
            (record.request_id, record.created_at, record.score, record.comment, record.request_id),
        )
    return cursor.rowcount > 0
