"""Exact restore into a database: one module per object type, in archive order.

Each module names its ``SECTION`` and provides a ``Restorer(ctx)`` with ``check(member)``
(raise on a conflicting ID, before anything is written), ``member(member)`` and ``end_chunk()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..archive import Member
from ..database import ARTIFACTS_ROOT, DatabaseDestination
from ..errors import ArchiveError
from ..idmap import IdMap
from ..members import extract_file
from ..summary import Progress, Summary

MAX_DATABASE_ID = 2**63 - 1  # the largest experiment ID a database's 64-bit integer column keeps


@dataclass
class RestoreContext:
    db: DatabaseDestination
    artifacts: Path  # the server's --artifacts-destination: `mlflow-artifacts:/<path>` lives at `<artifacts>/<path>`
    summary: Summary
    progress: Progress
    # The deletion time deleted runs get (the archive carries none; `mlflow gc` picks runs by it): the export's start.
    deleted_time: int | None = None
    # Artifact locations on the source -> where the restore writes their files (``run_location``, ``model_location``):
    # a version source in a run's or logged model's files points at the restored files.
    locations: IdMap = field(default_factory=IdMap)
    archived_experiments: set[int] = field(default_factory=set)  # the IDs of the experiments the archive holds
    _store: object = None

    def store(self):
        """MLflow's own SQL store on the destination: traces are written through it, since MLflow derives much
        from their spans (analytics columns, span metrics, rollups) that rows copied by hand would miss."""
        if self._store is None:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            class RestoreStore(SqlAlchemyStore):
                def _check_experiment_is_active(self, experiment) -> None:
                    pass  # a deleted experiment's traces are restored with it, as the source kept them

            self._store = RestoreStore(self.db.store_uri, ARTIFACTS_ROOT)
        return self._store

    def close(self) -> None:
        self.locations.close()
        if self._store is not None:
            self._store.engine.dispose()


def write_files(ctx: RestoreContext, member: Member, locations: dict[str, str], owner_parts: int = 1) -> dict[str, Path]:
    """Extract an artifact member's files of the owners in ``locations`` (owner -> its ``mlflow-artifacts:/`` URI).

    An owner is the first ``owner_parts`` components of a file's path. Files of other owners (written by an
    earlier restore, or not needed) count as present. Returns the folder of each owner written.
    """
    folders: dict[str, Path] = {}
    written = present = 0
    for path, data in member.iter_artifacts():
        parts = path.split("/", owner_parts)
        owner, relative = "/".join(parts[:owner_parts]), parts[-1]
        location = locations.get(owner)
        if location is None or len(parts) <= owner_parts:
            present += 1
            continue
        folders[owner] = ctx.artifacts.joinpath(*location.removeprefix(ARTIFACTS_ROOT).split("/"))
        extract_file(data, folders[owner], relative)
        written += 1
    ctx.summary.add("artifact_files", "created", written)
    ctx.summary.add("artifact_files", "skipped", present)
    return folders


def missing_rows(ctx: RestoreContext, table, key: str, rows: list[dict], row_of: Callable[[dict], dict],
                 compared: tuple[str, ...], what: str) -> list[dict]:
    """The archive ``rows`` whose database row (``row_of(row)``) the destination lacks, by ``key``.

    One it holds with the same ``compared`` columns was written by an earlier restore; one with other
    content stops the restore, naming ``what`` (formatted with the key's value), and so does a row without a
    value the database requires (the archive's column may be null where the database's may not).
    """
    present = ctx.db.fetch(table, key, [row_of(r)[key] for r in rows])
    required = [c.name for c in table.c if not c.nullable]
    new = []
    for row in rows:
        want = row_of(row)
        missing = [name for name in required if name in want and want[name] is None]
        if missing:
            named = what.format(want[key])
            raise ArchiveError(f"{named[0].upper()}{named[1:]} has no {missing[0]}, which the database requires; "
                               "restore cannot write it, and writes nothing.")
        have = present.get(want[key])
        if have is None:
            new.append(row)
        elif any(have[k] != want[k] for k in compared):
            raise ArchiveError(conflict(what.format(want[key]), {k: want[k] for k in compared}, dict(have)))
    return new


class OwnedRestorer:
    """Restores a section whose objects (its first table) own the rows of its other tables, a chunk in one
    transaction: an object the destination holds (``missing_rows``) was written whole by an earlier restore and is
    skipped with its rows. Subclasses name ``SECTION``, the objects' ``KEY``, ``COMPARED`` columns, ``WHAT`` (with
    ``{}`` for the key) and ``TABLES``: (archive table, database table, database row of an archive row), objects first."""

    SECTION = KEY = WHAT = ""
    COMPARED: tuple[str, ...] = ()
    TABLES: tuple = ()

    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self.tables: dict[str, list[dict]] = {}  # the current chunk's rows, by archive table

    def _new(self, rows: list[dict]) -> list[dict]:
        _, table, row_of = self.TABLES[0]
        return missing_rows(self.ctx, table, self.KEY, rows, row_of, self.COMPARED, self.WHAT)

    def check(self, member: Member) -> None:
        if member.stem == self.SECTION:
            self._new(member.read_table().to_pylist())

    def member(self, member: Member) -> None:
        self.tables[member.stem] = member.read_table().to_pylist()

    def end_chunk(self) -> None:
        tables, self.tables = self.tables, {}
        new = {r[self.KEY] for r in self._new(tables.get(self.SECTION, []))}
        written = {
            (stem, table): [row_of(r) for r in tables.get(stem, []) if r[self.KEY] in new]
            for stem, table, row_of in self.TABLES
        }
        with self.ctx.db.begin() as conn:
            for (_, table), rows in written.items():
                self.ctx.db.insert(conn, table, rows)
        for (stem, _), rows in written.items():
            self.ctx.summary.add(stem, "created", len(rows))
            self.ctx.summary.add(stem, "skipped", len(tables.get(stem, [])) - len(rows))


def conflict(what: str, fields: dict, present: dict) -> str:
    """One sentence naming the object whose ID the destination already uses for something else."""
    differs = "; ".join(
        f"{k} {fields[k]!r} in the archive, {present[k]!r} in the database" for k in fields if fields[k] != present[k]
    )
    return (
        f"The destination already holds {what} with other content ({differs}); restore writes only into an empty "
        "database or one whose IDs do not collide with the archive's (use `mlflow archive import` to merge)."
    )


def is_database_id(value: str | None) -> bool:
    """Whether an archive's experiment ID is one a database can keep: decimal digits, at most ``MAX_DATABASE_ID``
    (a list's element may be null)."""
    return value is not None and value.isascii() and value.isdecimal() and int(value) <= MAX_DATABASE_ID


def database_id(value: str, what: str) -> int:
    """The experiment ID of ``what`` as the database keeps it. Called while planning a member, which the check pass
    does for every object before the first write: an ID no database can keep refuses the restore whole."""
    if not is_database_id(value):
        raise ArchiveError(
            f"{what} has the experiment ID {value[:40]!r}, which is not a whole number a database can keep; restore "
            "keeps IDs, so it cannot write this archive (`mlflow archive import` gives new IDs)."
        )
    return int(value)


def json_column(row: dict, column: str, what: str):
    """The value of a ``*_json`` column. Called while planning a member, in the check pass: text that is not JSON
    refuses the restore whole."""
    try:
        return json.loads(row[column])
    except ValueError:  # JSONDecodeError, and bytes that are not UTF-8
        raise ArchiveError(f"{what} holds text that is not JSON in its {column}; restore cannot write it, and writes nothing.") from None
