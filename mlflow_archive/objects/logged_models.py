"""MLflow 3 logged models: info, params, tags, metrics, artifacts, and the runs' model inputs/outputs.

On import, each model's ``MLmodel`` file gets the destination's run and model IDs,
so ``models:/`` URIs on the destination load the model as on the source.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
from mlflow.entities import (
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
)
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from ..archive import Member
from ..context import PROVENANCE_PREFIX, ExportContext
from ..errors import ArchiveError
from ..members import ARTIFACTS_EXT
from ._common import COMPLETE, PARTIAL, ChunkReplay, key_values, pack_artifacts
from .experiments import MODEL_SOURCE_ID_TAG

SECTION = "logged_models"
PER_CHUNK = 100
STATE_TAG = PROVENANCE_PREFIX + "import_state"
MODEL_VERSIONS_KIND = "model_versions_tag"  # IdMap kind: source model ID -> its mlflow.modelVersions, renamed
MODEL_IO_COLUMNS = ("run_id", "direction", "model_id", "step")


# -- Export -------------------------------------------------------------------------------

def export(ctx: ExportContext) -> None:
    batch: list[LoggedModel] = []
    for experiment in ctx.experiments:
        for model in ctx.source.logged_models([experiment.experiment_id]):
            if not ctx.selection.wants_logged_model(experiment.experiment_id, model.model_id):
                continue
            batch.append(model)
            if len(batch) == PER_CHUNK:
                _export_chunk(ctx, batch, [])
                batch = []
    if batch or ctx.model_io:
        _export_chunk(ctx, batch, ctx.model_io)


def _export_chunk(ctx: ExportContext, models: list[LoggedModel], model_io: list[tuple]) -> None:
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table(
        "logged_models",
        {
            "model_id": [m.model_id for m in models],
            "experiment_id": [m.experiment_id for m in models],
            "name": [m.name for m in models],
            "artifact_location": [m.artifact_location for m in models],
            "creation_timestamp": [m.creation_timestamp for m in models],
            "last_updated_timestamp": [m.last_updated_timestamp for m in models],
            "model_type": [m.model_type or None for m in models],
            "source_run_id": [m.source_run_id or None for m in models],
            "status": [str(LoggedModelStatus(m.status)) for m in models],
            "status_message": [m.status_message or None for m in models],
            "tags": [key_values(m.tags) for m in models],
            "params": [key_values(m.params) for m in models],
        },
    )
    metrics = [(m.model_id, x) for m in models for x in (m.metrics or [])]
    chunk.write_table(
        "logged_model_metrics",
        {
            "model_id": [model_id for model_id, _ in metrics],
            "key": [x.key for _, x in metrics],
            "value": [float(x.value) for _, x in metrics],
            "timestamp": [x.timestamp for _, x in metrics],
            "step": [x.step for _, x in metrics],
            "run_id": [x.run_id for _, x in metrics],
            "dataset_name": [x.dataset_name for _, x in metrics],
            "dataset_digest": [x.dataset_digest for _, x in metrics],
        },
    )
    chunk.write_table("run_model_io", {name: [row[i] for row in model_io] for i, name in enumerate(MODEL_IO_COLUMNS)})
    pack_artifacts(
        ctx, chunk, models, lambda m: m.model_id, lambda m, target: ctx.source.download_uri(m.artifact_location, target)
    )
    ctx.summary.add("logged_models", "exported", len(models))


# -- Import -------------------------------------------------------------------------------

def rewrite_mlmodel(text: str, replacements: dict[str, str]) -> str:
    """Replace source IDs and locations in the top-level fields of an MLmodel file."""

    def swap(match: re.Match) -> str:
        value = match.group(2).strip().strip("'\"")
        return f"{match.group(1)}{replacements.get(value, match.group(2))}"

    return re.sub(r"^((?:run_id|model_id|model_uuid|artifact_path): )(.*)$", swap, text, flags=re.MULTILINE)


def rewrite_mlmodels(folder: Path, replacements: dict[str, str]) -> None:
    """``rewrite_mlmodel`` on each MLmodel file under ``folder``. A folder named MLmodel, or one that is not UTF-8
    text, is no MLmodel file MLflow could read: it is kept as it is."""
    for mlmodel in folder.rglob("MLmodel"):
        if not mlmodel.is_file():
            continue
        try:
            text = mlmodel.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        mlmodel.write_text(rewrite_mlmodel(text, replacements), encoding="utf-8")


def model_versions_tag(value: str, model_rename: dict[str, str]) -> str:
    """The registry's list of versions made from the model, with renamed registered models' new names.

    Copied rather than left to the destination's registry, so that it keeps the source's entries of
    deleted versions too. (The registry rewrites the tag when it creates a version from the model, and
    a version already listed makes it keep that entry only: the registry import sets it once more.)
    """
    if not model_rename:
        return value
    entries = json.loads(value)
    for entry in entries:
        entry["name"] = model_rename.get(entry["name"], entry["name"])
    return json.dumps(entries)


class Importer(ChunkReplay):
    kind, object_type = "logged_model", "logged_models"

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            self.upload_artifacts(member, self._upload)
            return
        table = member.read_table()
        if member.stem == "logged_models":
            for row in table.to_pylist():
                listed = next((t["value"] for t in row["tags"] if t["key"] == MLFLOW_MODEL_VERSIONS), None)
                if listed:
                    self.ctx.ids.put(MODEL_VERSIONS_KIND, row["model_id"], model_versions_tag(listed, self.ctx.options.model_rename))
            self.begin(table, "model_id")
            self.for_each(self._create_one, list(self.rows.items()))
        elif member.stem == "logged_model_metrics":
            by_model: dict[str, list[dict]] = defaultdict(list)
            for row in table.to_pylist():
                by_model[row["model_id"]].append(row)
            self.for_each(self._log_metrics, list(by_model.items()))
        else:
            self._link_runs(table)

    def _create_one(self, source_id: str, row: dict) -> None:
        ctx = self.ctx
        if row["replaces"]:
            ctx.dest.delete_logged_model(row["replaces"])
        experiment_id = ctx.ids.dest("experiment", row["experiment_id"])
        if experiment_id is None:
            raise ArchiveError(f"logged model {source_id} belongs to experiment {row['experiment_id']}, which was not imported")
        tags = {t["key"]: t["value"] for t in row["tags"] if not t["key"].startswith(PROVENANCE_PREFIX)}
        if MLFLOW_MODEL_VERSIONS in tags:
            tags[MLFLOW_MODEL_VERSIONS] = ctx.ids.dest(MODEL_VERSIONS_KIND, source_id)
        tags.update({MODEL_SOURCE_ID_TAG: source_id, STATE_TAG: PARTIAL})
        source_run = ctx.ids.dest("run", row["source_run_id"]) if row["source_run_id"] else None
        model = ctx.dest.create_logged_model(
            experiment_id, row["name"], source_run, tags, {p["key"]: p["value"] for p in row["params"]}, row["model_type"]
        )
        row["dest_id"], row["dest_location"] = model.model_id, model.artifact_location
        ctx.ids.put("logged_model", source_id, model.model_id, PARTIAL)
        if row["artifact_location"]:
            ctx.ids.put("model_location", row["artifact_location"], model.artifact_location)

    def _log_metrics(self, source_id: str, rows: list[dict]) -> None:
        by_run: dict[str, list[Metric]] = defaultdict(list)
        for r in rows:
            run_id = self.ctx.ids.dest("run", r["run_id"]) if r["run_id"] else None
            if run_id is None:
                raise ArchiveError(
                    f"metric {r['key']} of logged model {source_id} was logged in run {r['run_id']}, which is not in the archive"
                )
            by_run[run_id].append(
                Metric(r["key"], r["value"], r["timestamp"], r["step"], model_id=self.dest(source_id),
                       dataset_name=r["dataset_name"], dataset_digest=r["dataset_digest"], run_id=run_id)
            )
        for run_id, metrics in by_run.items():
            self.ctx.dest.log_batch(run_id, metrics=metrics)

    def _upload(self, source_id: str, local: Path) -> None:
        """Point the MLmodel files at the destination's IDs, then upload."""
        row = self.rows[source_id]
        replacements = {source_id: row["dest_id"]}
        if row["artifact_location"]:
            replacements[row["artifact_location"]] = row["dest_location"]
        if row["source_run_id"] and self.ctx.ids.dest("run", row["source_run_id"]):
            replacements[row["source_run_id"]] = self.ctx.ids.dest("run", row["source_run_id"])
        rewrite_mlmodels(local, replacements)
        self.ctx.dest.log_artifacts(row["dest_location"], local)

    def _link_runs(self, table: pa.Table) -> None:
        ctx = self.ctx
        for row in table.to_pylist():
            run_id = ctx.ids.dest("run", row["run_id"])
            found = ctx.ids.get("logged_model", row["model_id"])
            # Only links of models this import created: the others were linked when they were created.
            fresh = row["model_id"] in self.rows or ctx.ids.get("logged_model_created", row["model_id"])
            if run_id is None or found is None or not fresh or row["model_id"] in self.failed:
                continue
            try:
                if row["direction"] == "input":
                    ctx.dest.log_model_inputs(run_id, [LoggedModelInput(found[0])])
                else:
                    ctx.dest.log_model_outputs(run_id, [LoggedModelOutput(found[0], row["step"] or 0)])
            except Exception as exc:
                ctx.check_fatal(exc)
                ctx.summary.fail("logged_models", exc)

    def end_chunk(self) -> None:
        def finish(source_id, row):
            self.ctx.dest.finalize_logged_model(row["dest_id"], row["status"])
            self.ctx.dest.set_logged_model_tags(row["dest_id"], {STATE_TAG: COMPLETE})
            self.ctx.ids.put("logged_model", source_id, row["dest_id"], COMPLETE)
            self.ctx.ids.put("logged_model_created", source_id, row["dest_id"])
            self.ctx.summary.add("logged_models", "created")

        self.for_each(finish, list(self.rows.items()))
        self.reset()

    def finish(self) -> None:
        pass
