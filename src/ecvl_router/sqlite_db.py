"""SQLite databases that survive crashes and are shared between threads and processes, and files written durably.

A database runs in WAL mode with ``synchronous=FULL``: a committed transaction survives kill -9 of its process
and a power loss, readers never wait for writers, and writers (threads or processes) wait for each other up
to ``BUSY_TIMEOUT_S``. A write transaction takes the write lock at its start (``BEGIN IMMEDIATE``), so two
processes never deadlock upgrading a read lock. The schema is created and upgraded by numbered migrations
(``PRAGMA user_version``); running them again changes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0

Migrations = Sequence[Sequence[str]]
"""Migration ``i`` (its SQL statements) brings ``user_version`` from ``i`` to ``i + 1``. Append, never edit."""


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A new connection to the database at ``path`` (autocommit, rows as ``sqlite3.Row``), closed on exit."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        yield connection
    finally:
        connection.close()


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the write lock from its start; rolled back if the block raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def open_database(path: Path, migrations: Migrations, error: type[Exception]) -> int:
    """Put the database at ``path`` (created if missing) in WAL mode and apply the migrations it lacks; how many ran.

    Raises ``error`` when SQLite refuses WAL mode or the database's schema is newer than ``migrations``.
    """
    latest = len(migrations)
    with connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise error(f"{path}: SQLite refused WAL mode (journal_mode is {mode})")
        if connection.execute("PRAGMA user_version").fetchone()[0] == latest:
            return 0
        with transaction(connection):
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > latest:
                raise error(f"{path}: schema version {version} is newer than this ecvl-router's ({latest}); upgrade ecvl-router")
            for statements in migrations[version:]:
                for statement in statements:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {latest}")
    return latest - version


def write_file_once(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` unless it exists: through a temporary file, fsynced, renamed into place.

    Meant for files named by their content's hash: two writers of the same name write the same bytes.
    """
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, target)
