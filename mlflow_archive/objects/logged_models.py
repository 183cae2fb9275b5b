"""MLflow 3 logged models: info, params, tags, metrics, artifacts, and the runs' model inputs/outputs.

On import, each model's ``MLmodel`` file gets the destination's run and model IDs,
so ``models:/`` URIs on the destination load the model as on the source.
"""

from __future__ import annotations

import re
import shutil
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
from ..context import PROVENANCE_PREFIX, ExportContext, ImportContext
from ..errors import ArchiveError
from ..members import ARTIFACTS_EXT, extract_file
from .experiments import MODEL_SOURCE_ID_TAG

SECTION = "logged_models"
PER_CHUNK = 100
STATE_TAG = PROVENANCE_PREFIX + "import_state"
COMPLETE, PARTIAL = "complete", "partial"
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


def _kv(mapping: dict) -> list[dict]:
    return [{"key": k, "value": v} for k, v in (mapping or {}).items()]


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
            "tags": [_kv(m.tags) for m in models],
            "params": [_kv(m.params) for m in models],
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
    with chunk.artifacts() as sink:
        for model, local in zip(models, ctx.ordered_map(lambda m: _download(ctx, m), models)):
            for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()):
                sink.add(f"{model.model_id}/{path.relative_to(local).as_posix()}", path)
    shutil.rmtree(ctx.workdir / "models", ignore_errors=True)
    ctx.summary.add("logged_models", "exported", len(models))


def _download(ctx: ExportContext, model: LoggedModel) -> Path:
    target = ctx.workdir / "models" / model.model_id
    target.mkdir(parents=True)
    return ctx.source.download_uri(model.artifact_location, target)


# -- Import -------------------------------------------------------------------------------

def rewrite_mlmodel(text: str, replacements: dict[str, str]) -> str:
    """Replace source IDs and locations in the top-level fields of an MLmodel file."""

    def swap(match: re.Match) -> str:
        value = match.group(2).strip().strip("'\"")
        return f"{match.group(1)}{replacements.get(value, match.group(2))}"

    return re.sub(r"^((?:run_id|model_id|model_uuid|artifact_path): )(.*)$", swap, text, flags=re.MULTILINE)


def _derived_tag(key: str) -> bool:
    """Tags the destination writes itself: ours, and the registry's list of versions made from the model."""
    return key.startswith(PROVENANCE_PREFIX) or key == MLFLOW_MODEL_VERSIONS


class Importer:
    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.rows: dict[str, dict] = {}
        self.failed: set[str] = set()

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            self._log_artifacts(member)
            return
        table = member.read_table()
        {"logged_models": self._create, "logged_model_metrics": self._log_metrics, "run_model_io": self._link_runs}[
            member.stem
        ](table)

    def _guarded(self, source_id: str, work) -> None:
        if source_id in self.failed or source_id not in self.rows:
            return
        try:
            work()
        except Exception as exc:
            self.ctx.check_fatal(exc)
            self.failed.add(source_id)
            self.ctx.summary.fail("logged_models", exc)

    def _map(self, items, work) -> None:
        for _ in self.ctx.ordered_map(lambda item: self._guarded(item[0], lambda: work(*item)), items):
            pass

    def _create(self, table: pa.Table) -> None:
        ctx = self.ctx
        for row in table.to_pylist():
            known = ctx.ids.get("logged_model", row["model_id"])
            if known and known[1] == COMPLETE:
                ctx.summary.add("logged_models", "skipped")
                continue
            row["replaces"] = known[0] if known else None
            self.rows[row["model_id"]] = row
        self._map(list(self.rows.items()), self._create_one)

    def _create_one(self, source_id: str, row: dict) -> None:
        ctx = self.ctx
        if row["replaces"]:
            ctx.dest.delete_logged_model(row["replaces"])
        experiment_id = ctx.ids.dest("experiment", row["experiment_id"])
        if experiment_id is None:
            raise ArchiveError(f"logged model {source_id} belongs to experiment {row['experiment_id']}, which was not imported")
        tags = {t["key"]: t["value"] for t in row["tags"] if not _derived_tag(t["key"])}
        tags.update({MODEL_SOURCE_ID_TAG: source_id, STATE_TAG: PARTIAL})
        source_run = ctx.ids.dest("run", row["source_run_id"]) if row["source_run_id"] else None
        model = ctx.dest.create_logged_model(
            experiment_id, row["name"], source_run, tags, {p["key"]: p["value"] for p in row["params"]}, row["model_type"]
        )
        row["dest_id"] = model.model_id
        ctx.ids.put("logged_model", source_id, model.model_id, PARTIAL)
        ctx.ids.put("model_location", row["artifact_location"] or "", model.artifact_location)

    def _log_metrics(self, table: pa.Table) -> None:
        by_model: dict[str, list[dict]] = defaultdict(list)
        for row in table.to_pylist():
            by_model[row["model_id"]].append(row)

        def work(source_id, rows):
            by_run: dict[str, list[Metric]] = defaultdict(list)
            for r in rows:
                run_id = self.ctx.ids.dest("run", r["run_id"]) if r["run_id"] else None
                if run_id is None:
                    raise ArchiveError(
                        f"metric {r['key']} of logged model {source_id} was logged in run {r['run_id']}, which is not in the archive"
                    )
                by_run[run_id].append(
                    Metric(r["key"], r["value"], r["timestamp"], r["step"], model_id=self.rows[source_id]["dest_id"],
                           dataset_name=r["dataset_name"], dataset_digest=r["dataset_digest"], run_id=run_id)
                )
            for run_id, metrics in by_run.items():
                self.ctx.dest.log_batch(run_id, metrics=metrics)

        self._map(list(by_model.items()), work)

    def _log_artifacts(self, member: Member) -> None:
        root = self.ctx.workdir / "models"
        for path, data in member.iter_artifacts():
            source_id, _, relative = path.partition("/")
            if source_id in self.rows and source_id not in self.failed:
                extract_file(data, root / source_id, relative)
        for source_id in sorted(p.name for p in root.iterdir()) if root.exists() else []:
            self._guarded(source_id, lambda: self._rewrite_mlmodels(source_id, root / source_id))
        uploads = [(source_id, root / source_id) for source_id in sorted(p.name for p in root.iterdir())] if root.exists() else []
        self._map(uploads, lambda source_id, local: self.ctx.dest.log_model_artifacts(self.rows[source_id]["dest_id"], local))
        shutil.rmtree(root, ignore_errors=True)

    def _rewrite_mlmodels(self, source_id: str, local: Path) -> None:
        row = self.rows[source_id]
        replacements = {source_id: row["dest_id"]}
        if row["artifact_location"]:
            replacements[row["artifact_location"]] = self.ctx.ids.dest("model_location", row["artifact_location"])
        if row["source_run_id"] and self.ctx.ids.dest("run", row["source_run_id"]):
            replacements[row["source_run_id"]] = self.ctx.ids.dest("run", row["source_run_id"])
        for mlmodel in local.rglob("MLmodel"):
            mlmodel.write_text(rewrite_mlmodel(mlmodel.read_text(encoding="utf-8"), replacements), encoding="utf-8")

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

        self._map(list(self.rows.items()), finish)
        self.rows, self.failed = {}, set()

    def finish(self) -> None:
        pass
