"""Source-to-destination ID maps kept on disk, so memory does not grow with the archive."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from typing import Iterable


class IdMap:
    """A thread-safe map (kind, source id) -> (destination id, state), in a temporary SQLite file."""

    def __init__(self) -> None:
        self._file = tempfile.NamedTemporaryFile(prefix="mlflow-archive-ids-", suffix=".db")
        self._db = sqlite3.connect(self._file.name, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE ids (kind TEXT, source TEXT, dest TEXT, state TEXT, PRIMARY KEY (kind, source))"
        )
        self._lock = threading.Lock()

    def put(self, kind: str, source: str, dest: str, state: str = "") -> None:
        self.put_many(kind, [(source, dest, state)])

    def put_many(self, kind: str, rows: Iterable[tuple[str, str, str]]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO ids VALUES (?, ?, ?, ?)", ((kind, s, d, st) for s, d, st in rows)
            )

    def get(self, kind: str, source: str) -> tuple[str, str] | None:
        with self._lock:
            row = self._db.execute("SELECT dest, state FROM ids WHERE kind = ? AND source = ?", (kind, source)).fetchone()
        return row

    def dest(self, kind: str, source: str) -> str | None:
        found = self.get(kind, source)
        return found[0] if found else None

    def longest_prefix(self, kind: str, value: str) -> tuple[str, str] | tuple[None, None]:
        """The (source, dest) whose source is the longest path prefix of ``value``."""
        with self._lock:
            row = self._db.execute(
                "SELECT source, dest FROM ids WHERE kind = ? AND source != '' AND substr(?, 1, length(source)) = source "
                "AND (length(?) = length(source) OR substr(?, length(source) + 1, 1) = '/') "
                "ORDER BY length(source) DESC LIMIT 1",
                (kind, value, value, value),
            ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def close(self) -> None:
        self._db.close()
        self._file.close()
