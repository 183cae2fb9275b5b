"""Registered models and their versions: numbers (with the gaps deleted versions left), stages, status, times, aliases, tags.

A chunk's models and versions go in one transaction; a model already present with the same
creation time was written whole by an earlier restore and is skipped with its versions.
"""

from __future__ import annotations

from mlflow.store.model_registry.dbmodels.models import (
    SqlModelVersion,
    SqlModelVersionTag,
    SqlRegisteredModel,
    SqlRegisteredModelAlias,
    SqlRegisteredModelTag,
)

from ..archive import Member
from ..errors import ArchiveError
from ..members import ARTIFACTS_EXT
from . import RestoreContext, conflict

SECTION = "registry"
MODELS = SqlRegisteredModel.__table__
COMPARED = ("creation_time", "last_updated_time", "description")


def model_row(row: dict) -> dict:
    return {
        "name": row["name"],
        "creation_time": row["creation_timestamp"],
        "last_updated_time": row["last_updated_timestamp"],
        "description": row["description"],
    }


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.models: set[str] = set()  # names this chunk writes
        self.rows: dict = {}  # ORM table -> rows to insert
        self.skipped = 0

    def _plan(self, member: Member) -> list[dict]:
        if member.kind == ARTIFACTS_EXT:
            raise ArchiveError(
                "This archive carries model version files (--export-version-model), which restore does not write yet; "
                "use `mlflow archive import`, or export without that option."
            )
        rows = member.read_table().to_pylist()
        if member.stem == "model_versions":
            linked = next((r for r in rows if r["model_id"]), None)
            if linked:
                raise ArchiveError(
                    f"Version {linked['version']} of registered model {linked['name']!r} is made from logged model "
                    f"{linked['model_id']}, and restore does not write logged models yet; use `mlflow archive import`."
                )
            return rows
        present = self.ctx.db.fetch(MODELS, "name", [r["name"] for r in rows])
        new = []
        for row in rows:
            want, have = model_row(row), present.get(row["name"])
            if have is None:
                new.append(row)
            elif any(have[k] != want[k] for k in COMPARED):
                raise ArchiveError(conflict(f"registered model {row['name']!r}", {k: want[k] for k in COMPARED}, dict(have)))
        self.skipped = len(rows) - len(new)
        return new

    def check(self, member: Member) -> None:
        self._plan(member)

    def member(self, member: Member) -> None:
        rows = self._plan(member)
        if member.stem == "registered_models":
            self.models = {r["name"] for r in rows}
            self._add(MODELS, [model_row(r) for r in rows])
            self._add(SqlRegisteredModelTag.__table__, [{"name": r["name"], **t} for r in rows for t in r["tags"]])
            self._add(SqlRegisteredModelAlias.__table__, [{"name": r["name"], **a} for r in rows for a in r["aliases"]])
            return
        versions = [r for r in rows if r["name"] in self.models]
        self._add(SqlModelVersion.__table__, [{
            "name": v["name"], "version": v["version"], "creation_time": v["creation_timestamp"],
            # The archive writes an empty description or run link as null; a server stores them as "" (its request defaults).
            "last_updated_time": v["last_updated_timestamp"], "description": v["description"] or "", "user_id": v["user_id"],
            "current_stage": v["current_stage"], "source": v["source"], "storage_location": v["source"],
            "run_id": v["run_id"], "run_link": v["run_link"] or "", "status": v["status"], "status_message": v["status_message"],
        } for v in versions])
        self._add(SqlModelVersionTag.__table__, [
            {"name": v["name"], "version": v["version"], **t} for v in versions for t in v["tags"]
        ])
        self.ctx.summary.add("model_versions", "created", len(versions))
        self.ctx.summary.add("model_versions", "skipped", len(rows) - len(versions))

    def _add(self, table, rows: list[dict]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def end_chunk(self) -> None:
        with self.ctx.db.begin() as conn:
            for table in (MODELS, SqlRegisteredModelTag.__table__, SqlModelVersion.__table__,
                          SqlModelVersionTag.__table__, SqlRegisteredModelAlias.__table__):
                self.ctx.db.insert(conn, table, self.rows.get(table, []))
        self.ctx.summary.add("registered_models", "created", len(self.models))
        self.ctx.summary.add("registered_models", "skipped", self.skipped)
        self._reset()
