"""What an archive holds, read with the package's own reader: every table's rows and every artifact path."""

from __future__ import annotations

import sqlite3

from mlflow_archive.archive import ArchiveReader
from mlflow_archive.members import ARTIFACTS_EXT
from mlflow_archive.streams import open_input


def archive_contents(path) -> tuple[dict[str, list[dict]], list[str]]:
    """Every table's rows (by table name) and every artifact path (``section:path``) of an archive."""
    tables: dict[str, list[dict]] = {}
    artifacts: list[str] = []
    with open_input(str(path)) as stream:
        for member in ArchiveReader(stream):
            if member.kind == ARTIFACTS_EXT:
                artifacts += [f"{member.section}:{p}" for p, _ in member.iter_artifacts()]
            else:
                tables.setdefault(member.stem, []).extend(member.read_table().to_pylist())
    return tables, artifacts


def column(path, table: str, name: str) -> set:
    """The set of values of one column of one table (empty when the archive has no such table)."""
    return {row[name] for row in archive_contents(path)[0].get(table, [])}


def database_rows(database, queries: dict[str, str]) -> dict[str, list[tuple]]:
    """Each query's rows from a SQLite database, by name: what a restore wrote, compared with its source."""
    with sqlite3.connect(database) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}
