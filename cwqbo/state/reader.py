"""The store opened read-only over the plain sqlite3 module: the read commands' fast start (`cli/fast_path.py`).

It answers only for a database whose schema is exactly the current one. Anything else (absent, empty, older,
newer, foreign, locked, unreadable) is None, and the caller takes the full path (`Store.open`), which migrates
or says what is wrong. Opened with `mode=ro`, it cannot change the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cwqbo.state.store import BUSY_TIMEOUT_MS, MIGRATION_SET, MIGRATIONS_TABLE, SCHEMA


class Rows:
    """`execute` over a connection: the part of `sqlite_utils.Database` the read queries use (`store.Queries`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters if parameters is not None else ())


class ReadStore:
    """A `store.Readable` that can only read."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._rows = Rows(conn)
        self.path = path

    @property
    def db(self) -> Rows:
        return self._rows

    def close(self) -> None:
        self._rows.conn.close()


def open_read(path: Path) -> ReadStore | None:
    """The database at `path` for reading, or None unless it exists, is not empty and has the current schema."""
    try:
        if path.stat().st_size == 0:
            return None
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except (OSError, ValueError, sqlite3.Error):
        return None
    try:
        applied = {name for (name,) in conn.execute(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", [MIGRATION_SET])}
    except sqlite3.Error:
        applied = set()
    if applied != set(SCHEMA):
        conn.close()
        return None
    return ReadStore(conn, path)
