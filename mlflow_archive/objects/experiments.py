"""Experiments: selection, export, and import (reuse by name, rename, provenance)."""

from __future__ import annotations

from mlflow.entities import LifecycleStage

from ..context import (
    PROVENANCE_PREFIX,
    SOURCE_TAG_PREFIX,
    ExportContext,
    ImportContext,
)
from ..archive import descriptive
from ..errors import ArchiveError
from ._common import ABANDONED, NATIVE

SECTION = "experiments"
PER_CHUNK = 1000
SOURCE_ID_TAG = PROVENANCE_PREFIX + "source_experiment_id"
RUN_SOURCE_ID_TAG = PROVENANCE_PREFIX + "source_run_id"
MODEL_SOURCE_ID_TAG = PROVENANCE_PREFIX + "source_model_id"
EXISTING_EXPERIMENT = "existing_experiment"  # IdMap kind: destination experiments this import found, not created


def export(ctx: ExportContext) -> None:
    experiments = ctx.experiments
    for start in range(0, len(experiments), PER_CHUNK):
        batch = experiments[start : start + PER_CHUNK]
        ctx.writer.chunk(SECTION).write_table(
            "experiments",
            {
                "experiment_id": [e.experiment_id for e in batch],
                "name": [e.name for e in batch],
                "artifact_location": [e.artifact_location for e in batch],
                "lifecycle_stage": [e.lifecycle_stage for e in batch],
                "creation_time": [e.creation_time for e in batch],
                "last_update_time": [e.last_update_time for e in batch],
                "tags": [[{"key": k, "value": v} for k, v in e.tags.items()] for e in batch],
            },
        )
        ctx.summary.add("experiments", "exported", len(batch))


class Importer:
    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.to_delete: list[str] = []

    def member(self, member) -> None:
        # Concurrently, but experiments that land under one name (renamed so) one after another.
        by_name: dict[str, list[dict]] = {}
        for row in member.read_table().to_pylist():
            by_name.setdefault(self.ctx.options.experiment_rename.get(row["name"], row["name"]), []).append(row)
        for _ in self.ctx.ordered_map(self._import_all, by_name.values()):
            pass

    def _import_all(self, rows: list[dict]) -> None:
        for row in rows:
            try:
                self._import_one(row)
            except ArchiveError:
                raise
            except Exception as exc:
                self.ctx.check_fatal(exc)
                self.ctx.summary.fail("experiments", exc)

    def _import_one(self, row: dict) -> None:
        ctx = self.ctx
        name = ctx.options.experiment_rename.get(row["name"], row["name"])
        tags = {t["key"]: t["value"] for t in row["tags"] if not t["key"].startswith(PROVENANCE_PREFIX)}
        tags[SOURCE_ID_TAG] = row["experiment_id"]
        if ctx.options.import_source_tags:
            tags.update(self._source_tags(row))
        existing = ctx.dest.experiment_by_name(name)
        native = ours = False
        if existing is None:
            dest_id = ctx.dest.create_experiment(name, tags)
            ours = True
            ctx.summary.add("experiments", "created")
        else:
            dest_id = existing.experiment_id
            if existing.lifecycle_stage == LifecycleStage.DELETED:
                ctx.dest.restore_experiment(dest_id)
            # The experiment the archive came from (same ID, name and creation time) is left as it is.
            created = row.get("creation_time")
            native = dest_id == row["experiment_id"] and created is not None and existing.creation_time == created
            # Made by an earlier import of this archive's experiment; one matched by name only is the user's,
            # and never gets the source-ID tag, so a later import does not take it for its own.
            ours = existing.tags.get(SOURCE_ID_TAG) == row["experiment_id"]
            if not native:
                missing = {k: v for k, v in tags.items() if k not in existing.tags and k != SOURCE_ID_TAG}
                ctx.dest.set_experiment_tags(dest_id, missing)
            ctx.summary.add("experiments", "skipped")
            self._index_runs(dest_id)
        ctx.ids.put("experiment", row["experiment_id"], dest_id)
        restored_since = native and existing.lifecycle_stage == LifecycleStage.ACTIVE
        if row["lifecycle_stage"] == LifecycleStage.DELETED and not restored_since:
            if ours or native or existing.lifecycle_stage == LifecycleStage.DELETED:
                # Runs can only be created in an active experiment: delete it (again) once the archive is replayed.
                self.to_delete.append(dest_id)
            else:
                ctx.summary.leave_alone(
                    f"experiment {name!r} (ID {dest_id}) is deleted in the archive, but the destination's own experiment "
                    "of that name was not made by an import: left active"
                )
        elif existing is not None and existing.lifecycle_stage == LifecycleStage.DELETED and not (ours or native):
            ctx.summary.note(f"experiment {name!r} (ID {dest_id}) was deleted on the destination: restored, to take the archive's runs")

    def _source_tags(self, row: dict) -> dict[str, str]:
        source = descriptive(self.ctx.header, "source")
        tags = {
            SOURCE_TAG_PREFIX + "experiment_id": row["experiment_id"],
            SOURCE_TAG_PREFIX + "tracking_uri": str(source.get("tracking_uri")),
        }
        for key in ("artifact_location", "creation_time", "last_update_time"):
            if row.get(key) is not None:
                tags[SOURCE_TAG_PREFIX + key] = str(row[key])
        return tags

    def _index_runs(self, dest_experiment_id: str) -> None:
        """Record the runs and logged models already here, so they are not created twice: those an earlier import
        put here (by their source-ID tag); logged models here under their own IDs, which an archive of this very
        server (or of one restored from it) names (model IDs are UUIDs: an equal ID is the model). Runs of the
        latter kind are looked up by ID chunk by chunk (``runs.Importer``), in the experiments marked here."""
        self.ctx.ids.put(EXISTING_EXPERIMENT, dest_experiment_id, dest_experiment_id)
        state = PROVENANCE_PREFIX + "import_state"
        rows = []
        for run in self.ctx.dest.runs_tagged([dest_experiment_id], RUN_SOURCE_ID_TAG):
            tags = run.data.tags
            if tags.get(state) == ABANDONED:  # replaced by a later import of the same run
                continue
            rows.append((tags[RUN_SOURCE_ID_TAG], run.info.run_id, tags.get(state, "")))
            if len(rows) >= 1000:
                self.ctx.ids.put_many("run", rows)
                rows = []
        self.ctx.ids.put_many("run", rows)
        if not self.ctx.dest.has("logged_models"):
            return
        rows = []
        for model in self.ctx.dest.every_logged_model([dest_experiment_id]):
            rows.append((model.model_id, model.model_id, NATIVE))
            if MODEL_SOURCE_ID_TAG in model.tags:
                rows.append((model.tags[MODEL_SOURCE_ID_TAG], model.model_id, model.tags.get(state, "")))
        self.ctx.ids.put_many("logged_model", rows)

    def end_chunk(self) -> None:
        pass

    def finish(self) -> None:
        for dest_id in self.to_delete:
            try:
                self.ctx.dest.delete_experiment(dest_id)
            except Exception as exc:
                self.ctx.check_fatal(exc)
                self.ctx.summary.fail("experiments", exc)
