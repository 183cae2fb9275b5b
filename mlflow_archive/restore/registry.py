"""Registered models and their versions: numbers (with the gaps deleted versions left), stages, status, times, aliases, tags.

A chunk's models and versions go in one transaction; a model already present with the same
creation time was written whole by an earlier restore and is skipped with its versions. A version
made from a logged model gets that model's artifact location as its storage location, as MLflow's
registry gives it; a source in the files of a run or logged model of the archive names the restored files.
Model files carried by ``--export-version-model`` are written, for versions whose source is neither a
logged model nor a run the destination holds, under ``<artifacts>/model-versions/``, and become the
version's storage location (where downloads read from); the source itself is kept, unless MLflow's server
would refuse it (``sources.refused``): then both name that folder, so no file outside it is ever served.
"""

from __future__ import annotations

import hashlib

from mlflow.store.model_registry.dbmodels.models import (
    SqlModelVersion,
    SqlModelVersionTag,
    SqlRegisteredModel,
    SqlRegisteredModelAlias,
    SqlRegisteredModelTag,
)
from mlflow.store.tracking.dbmodels.models import SqlLoggedModel, SqlRun

from ..archive import Member
from ..database import ARTIFACTS_ROOT
from ..members import ARTIFACTS_EXT
from ..objects.registry import RUNS_URI, version_owner
from ..sources import REFUSED, refused
from . import RestoreContext, missing_rows, write_files

SECTION = "registry"
MODELS = SqlRegisteredModel.__table__
COMPARED = ("creation_time", "last_updated_time", "description")
VERSION_FILES = "model-versions"  # folder under the artifacts destination for carried version files


def model_row(row: dict) -> dict:
    return {
        "name": row["name"],
        "creation_time": row["creation_timestamp"],
        "last_updated_time": row["last_updated_timestamp"],
        "description": row["description"],
    }


class Restorer:
    parents, versions = "registered_models", "model_versions"  # the archive's stems, and the summary's names
    what = "registered model {!r}"

    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.models: set[str] = set()  # names this chunk writes
        self.rows: dict = {}  # ORM table -> rows to insert
        self.unlocated: dict[str, dict] = {}  # archive owner of version files -> its version row, for the files to locate
        self.skipped = 0

    def _read(self, member: Member) -> list[dict]:
        """The member's rows, in the shape of the ``registered_models`` and ``model_versions`` tables."""
        return member.read_table().to_pylist()

    def _plan(self, member: Member) -> list[dict]:
        rows = self._read(member)
        if member.stem == self.versions:
            return rows
        new = missing_rows(self.ctx, MODELS, "name", rows, model_row, COMPARED, self.what)
        self.skipped = len(rows) - len(new)
        return new

    def check(self, member: Member) -> None:
        if member.kind != ARTIFACTS_EXT:
            self._plan(member)

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            self._write_version_files(member)
            return
        rows = self._plan(member)
        if member.stem == self.parents:
            self.models = {r["name"] for r in rows}
            self._add(MODELS, [model_row(r) for r in rows])
            self._add(SqlRegisteredModelTag.__table__, [{"name": r["name"], **t} for r in rows for t in r["tags"]])
            self._add(SqlRegisteredModelAlias.__table__, [{"name": r["name"], **a} for r in rows for a in r["aliases"]])
            return
        versions = [r for r in rows if r["name"] in self.models]
        version_rows = [{
            "name": v["name"], "version": v["version"], "creation_time": v["creation_timestamp"],
            # The archive writes an empty description or run link as null; a server stores them as "" (its request defaults).
            "last_updated_time": v["last_updated_timestamp"], "description": v["description"] or "", "user_id": v["user_id"],
            "current_stage": v["current_stage"], "source": v["source"], "storage_location": v["source"],
            "run_id": v["run_id"], "run_link": v["run_link"] or "", "status": v["status"], "status_message": v["status_message"],
        } for v in versions]
        self._locate(versions, version_rows)
        self._add(SqlModelVersion.__table__, version_rows)
        self._add(SqlModelVersionTag.__table__, [
            {"name": v["name"], "version": v["version"], **t} for v in versions for t in v["tags"]
        ])
        self.ctx.summary.add(self.versions, "created", len(versions))
        self.ctx.summary.add(self.versions, "skipped", len(rows) - len(versions))

    def _locate(self, versions: list[dict], rows: list[dict]) -> None:
        """Storage locations of versions made from logged models; sources in a restored run's or logged model's files
        point at them; versions held by no restored run or model await files; no source MLflow's server refuses stays."""
        logged = self.ctx.db.fetch(SqlLoggedModel.__table__, "model_id", {v["model_id"] for v in versions if v["model_id"]})
        run_sources = [RUNS_URI.match(v["source"] or "") for v in versions]
        runs = self.ctx.db.fetch(SqlRun.__table__, "run_uuid", {m.group(1) for m in run_sources if m})
        for version, row, run_source in zip(versions, rows, run_sources):
            model = logged.get(version["model_id"])
            source = version["source"] or ""
            if (restored := self._restored_source(source)) != source:
                row["source"] = row["storage_location"] = restored
            if model is not None:
                row["storage_location"] = model["artifact_location"]
            elif restored == source and not (run_source and run_source.group(1) in runs):
                self.unlocated[version_owner(version["name"], version["version"])] = row
            if version["model_id"] and model is None:
                self.ctx.summary.note(
                    f"version {version['version']} of {version['name']!r} is made from logged model {version['model_id']}, "
                    "which neither the archive nor the destination holds: its source is kept as it was"
                )
            if refused(row["source"] or ""):
                # Where the server reads the version's files: the restored model's, else the carried files' folder
                # (empty when the archive carries none).
                if model is None:
                    row["storage_location"] = self._files_location(row)
                    self.unlocated[version_owner(version["name"], version["version"])] = row
                row["source"] = row["storage_location"]
                self.ctx.summary.note(
                    f"version {version['version']} of {version['name']!r}: its source {version['source']!r} is {REFUSED}; "
                    f"it points at {row['source']}"
                )

    def _restored_source(self, source: str) -> str:
        """``source`` in the files of a run or logged model of the archive: the same path in the restored files."""
        for kind in ("run_location", "model_location"):
            prefix, restored = self.ctx.locations.longest_prefix(kind, source)
            if prefix:
                return restored + source[len(prefix):]
        return source

    @staticmethod
    def _files_location(row: dict) -> str:
        # A folder name the artifact proxy reads back unchanged, whatever characters the model name has.
        digest = hashlib.sha256(row["name"].encode()).hexdigest()[:32]
        return f"{ARTIFACTS_ROOT}{VERSION_FILES}/{digest}/{row['version']}"

    def _write_version_files(self, member: Member) -> None:
        """Carried files of versions no restored run or logged model holds; their storage location names them."""
        locations = {owner: self._files_location(row) for owner, row in self.unlocated.items()}
        for owner in write_files(self.ctx, member, locations, owner_parts=2):
            self.unlocated[owner]["storage_location"] = locations[owner]

    def _add(self, table, rows: list[dict]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def end_chunk(self) -> None:
        with self.ctx.db.begin() as conn:
            for table in (MODELS, SqlRegisteredModelTag.__table__, SqlModelVersion.__table__,
                          SqlModelVersionTag.__table__, SqlRegisteredModelAlias.__table__):
                self.ctx.db.insert(conn, table, self.rows.get(table, []))
        self.ctx.summary.add(self.parents, "created", len(self.models))
        self.ctx.summary.add(self.parents, "skipped", self.skipped)
        self._reset()
