"""Logged models with their IDs, times and status: params, tags, metrics, the runs' model inputs and outputs, files.

A chunk's rows go in one transaction at ``end_chunk``; its files are written before that, under
``<artifacts>/<experiment>/models/<model>/artifacts``, the location MLflow's ``create_logged_model``
gives a model. A model already present with the same content was written whole by an earlier restore
and is skipped.
"""

from __future__ import annotations

import math
import uuid

import sqlalchemy as sa
from mlflow.entities import LifecycleStage, LoggedModelStatus
from mlflow.store.tracking.dbmodels.models import (
    SqlInput,
    SqlLoggedModel,
    SqlLoggedModelMetric,
    SqlLoggedModelParam,
    SqlLoggedModelTag,
    SqlRun,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from ..archive import Member
from ..database import ARTIFACTS_ROOT
from ..errors import ArchiveError
from ..members import ARTIFACTS_EXT
from ..objects.logged_models import MODEL_IO_COLUMNS, rewrite_mlmodels
from . import RestoreContext, database_id, missing_rows, write_files
from .runs import MAX_DOUBLE

SECTION = "logged_models"
MODELS, INPUTS = SqlLoggedModel.__table__, SqlInput.__table__
COMPARED = ("experiment_id", "name", "creation_timestamp_ms", "last_updated_timestamp_ms", "status",
            "model_type", "source_run_id", "status_message")
# How MLflow's log_inputs / log_outputs store a run's model input or output: (source_type, destination_type).
MODEL_IO_TYPES = {"input": ("RUN_INPUT", "MODEL_INPUT"), "output": ("RUN_OUTPUT", "MODEL_OUTPUT")}


def model_location(experiment_id: int, model_id: str) -> str:
    return (f"{ARTIFACTS_ROOT}{experiment_id}/{SqlAlchemyStore.MODELS_FOLDER_NAME}/{model_id}/"
            f"{SqlAlchemyStore.ARTIFACTS_FOLDER_NAME}")


def model_row(row: dict) -> dict:
    experiment_id = database_id(row["experiment_id"], f"Logged model {row['model_id']}")
    if row["status"] not in LoggedModelStatus.__members__:
        raise ArchiveError(
            f"Logged model {row['model_id']} has the status {row['status'][:40]!r}, which MLflow does not know "
            f"({', '.join(LoggedModelStatus.__members__)}); restore cannot write it, and writes nothing."
        )
    return {
        "model_id": row["model_id"],
        "experiment_id": experiment_id,
        "name": row["name"],
        "artifact_location": model_location(experiment_id, row["model_id"]),
        "creation_timestamp_ms": row["creation_timestamp"],
        "last_updated_timestamp_ms": row["last_updated_timestamp"],
        "status": LoggedModelStatus(row["status"]).to_int(),
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "model_type": row["model_type"] or "",  # the archive writes an empty type as null; a server stores ""
        "source_run_id": row["source_run_id"],
        "status_message": row["status_message"],
    }


def metric_value(value: float) -> float:
    """As MLflow's ``sanitize_metric_value`` stores a logged model's metric: NaN as 0, +-inf as the largest double."""
    return 0.0 if math.isnan(value) else max(-MAX_DOUBLE, min(value, MAX_DOUBLE))


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.models: dict[str, dict] = {}  # model ID -> model row, for the models this chunk writes
        self.source_locations: dict[str, str] = {}  # model ID -> its artifact location on the source
        self.rows: dict = {}  # ORM table -> rows to insert
        self.model_io: list[dict] = []
        self.skipped = 0

    def _plan(self, member: Member) -> tuple[list[dict], list[dict]]:
        """(the member's rows, those not in the destination yet); a model ID taken by other content refuses."""
        rows = member.read_table().to_pylist()
        moved = ((r["artifact_location"], model_row(r)["artifact_location"]) for r in rows)
        self.ctx.locations.put_many("model_location", [(source, dest, "") for source, dest in moved if source not in (None, dest)])
        return rows, missing_rows(self.ctx, MODELS, "model_id", rows, model_row, COMPARED, "logged model {}")

    def check(self, member: Member) -> None:
        if member.stem == "logged_models":
            self._plan(member)

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            self._write_files(member)
            return
        if member.stem == "logged_models":
            rows, new = self._plan(member)
            self.skipped = len(rows) - len(new)
            self.models = {r["model_id"]: model_row(r) for r in new}
            self.source_locations = {r["model_id"]: r["artifact_location"] for r in new if r["artifact_location"]}
            self._add(MODELS, list(self.models.values()))
            for table, column, archived in ((SqlLoggedModelParam, "param", "params"), (SqlLoggedModelTag, "tag", "tags")):
                self._add(table.__table__, [
                    {"model_id": r["model_id"], "experiment_id": self.models[r["model_id"]]["experiment_id"],
                     f"{column}_key": kv["key"], f"{column}_value": kv["value"]}
                    for r in new for kv in r[archived]
                ])
        elif member.stem == "logged_model_metrics":
            self._metrics([r for r in member.read_table().to_pylist() if r["model_id"] in self.models])
        else:
            self.model_io += member.read_table().select(list(MODEL_IO_COLUMNS)).to_pylist()

    def _add(self, table: sa.Table, rows: list[dict]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def _metrics(self, rows: list[dict]) -> None:
        """A model's metric carries the experiment of the run it was logged in (MLflow's ``_log_model_metrics``)."""
        runs = self.ctx.db.fetch(SqlRun.__table__, "run_uuid", {r["run_id"] for r in rows if r["run_id"]})
        self._add(SqlLoggedModelMetric.__table__, [{
            "model_id": r["model_id"], "metric_name": r["key"], "metric_timestamp_ms": r["timestamp"],
            "metric_step": r["step"], "metric_value": metric_value(r["value"]),
            "experiment_id": runs[r["run_id"]]["experiment_id"] if r["run_id"] in runs else self.models[r["model_id"]]["experiment_id"],
            "run_id": r["run_id"] or "", "dataset_uuid": None,
            "dataset_name": r["dataset_name"], "dataset_digest": r["dataset_digest"],
        } for r in rows])

    def _write_files(self, member: Member) -> None:
        """The model's files; MLmodel files that name the source's artifact location name the destination's."""
        folders = write_files(self.ctx, member, {model_id: m["artifact_location"] for model_id, m in self.models.items()})
        for model_id, folder in folders.items():
            source, dest = self.source_locations.get(model_id), self.models[model_id]["artifact_location"]
            if source is None or source == dest:
                continue
            rewrite_mlmodels(folder, {source: dest})

    def _model_io_rows(self, conn) -> list[dict]:
        """The runs' model inputs and outputs the destination lacks, between runs and models it holds."""
        if not self.model_io:
            return []
        run_ids = {r["run_id"] for r in self.model_io}
        model_ids = {r["model_id"] for r in self.model_io}
        runs = set(conn.execute(sa.select(SqlRun.__table__.c.run_uuid).where(SqlRun.__table__.c.run_uuid.in_(run_ids))).scalars())
        models = set(conn.execute(sa.select(MODELS.c.model_id).where(MODELS.c.model_id.in_(model_ids))).scalars())
        link_columns = (INPUTS.c.source_type, INPUTS.c.source_id, INPUTS.c.destination_type, INPUTS.c.destination_id, INPUTS.c.step)
        present = {tuple(row) for row in conn.execute(sa.select(*link_columns).where(
            INPUTS.c.source_id.in_(run_ids), INPUTS.c.source_type.in_([t[0] for t in MODEL_IO_TYPES.values()])
        ))}
        rows = []
        for r in self.model_io:
            source_type, destination_type = MODEL_IO_TYPES[r["direction"]]
            link = (source_type, r["run_id"], destination_type, r["model_id"], r["step"] or 0)
            if r["run_id"] in runs and r["model_id"] in models and link not in present:
                present.add(link)
                rows.append({"input_uuid": uuid.uuid4().hex, **dict(zip(("source_type", "source_id", "destination_type",
                                                                          "destination_id", "step"), link))})
        return rows

    def end_chunk(self) -> None:
        with self.ctx.db.begin() as conn:
            for table in (MODELS, SqlLoggedModelParam.__table__, SqlLoggedModelTag.__table__, SqlLoggedModelMetric.__table__):
                self.ctx.db.insert(conn, table, self.rows.get(table, []))
            self.ctx.db.insert(conn, INPUTS, self._model_io_rows(conn))
        self.ctx.summary.add("logged_models", "created", len(self.models))
        self.ctx.summary.add("logged_models", "skipped", self.skipped)
        self._reset()
