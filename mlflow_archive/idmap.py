"""Source-to-destination ID maps kept on disk, so memory does not grow with the archive."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from typing import Iterable


PREFIXES_PER_QUERY = 500  # below SQLite's limit of bound parameters per statement


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
        """The (source, dest) whose source is the longest path prefix of ``value``: ``value`` itself, or ``value`` up
        to one of its slashes. Each candidate is looked up by key, so a lookup costs the path's depth, not the map's size."""
        ends = [end for end in range(len(value), 0, -1) if end == len(value) or value[end] == "/"]
        with self._lock:
            for first in range(0, len(ends), PREFIXES_PER_QUERY):
                prefixes = [value[:end] for end in ends[first : first + PREFIXES_PER_QUERY]]
                row = self._db.execute(
                    f"SELECT source, dest FROM ids WHERE kind = ? AND source IN ({', '.join('?' * len(prefixes))}) "
                    "ORDER BY length(source) DESC LIMIT 1",
                    (kind, *prefixes),
                ).fetchone()
                if row:
                    return row[0], row[1]
        return None, None

    def close(self) -> None:
        self._db.close()
        self._file.close()
