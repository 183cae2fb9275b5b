"""Runs with their IDs and times: params, tags, full metric histories, latest metrics, dataset inputs, artifacts.

A chunk's rows go in one transaction, inserted member by member (so memory holds one member's rows)
and committed at ``end_chunk``; its files are written before that, under
``<artifacts>/<experiment>/<run>/artifacts``. A run whose row is already there (same content) was
written whole by an earlier restore and is skipped; files of a chunk killed before its commit are
simply written again.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from mlflow.entities import LifecycleStage, SourceType
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from ..archive import Member
from ..database import ARTIFACTS_ROOT
from ..errors import ArchiveError
from ..members import ARTIFACTS_EXT
from . import RestoreContext, conflict, database_id, write_files
from .experiments import EXPERIMENTS

SECTION = "runs"
RUNS = SqlRun.__table__
COMPARED = ("experiment_id", "name", "user_id", "status", "start_time", "end_time", "lifecycle_stage")
MAX_DOUBLE = 1.7976931348623157e308  # MLflow stores +-inf as the largest finite double (SqlAlchemyStore.log_metric)


def run_row(row: dict, deleted_time: int | None) -> dict:
    run_id = row["run_id"]
    experiment_id = database_id(row["experiment_id"], f"Run {run_id}")
    return {
        "run_uuid": run_id,
        "experiment_id": experiment_id,
        "name": row["run_name"],
        "user_id": row["user_id"],
        "status": row["status"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "lifecycle_stage": row["lifecycle_stage"],
        "artifact_uri": f"{ARTIFACTS_ROOT}{experiment_id}/{run_id}/{SqlAlchemyStore.ARTIFACTS_FOLDER_NAME}",
        "source_type": SourceType.to_string(SourceType.UNKNOWN),
        "source_name": "",
        "entry_point_name": "",
        "source_version": "",
        "deleted_time": deleted_time if row["lifecycle_stage"] == LifecycleStage.DELETED else None,
    }


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.conn = None
        self.runs: dict[str, dict] = {}  # run ID -> run row, for the runs this chunk writes
        self.transaction = None
        self.skipped = 0
        self.latest: list[pa.Table] = []  # per metrics member: its latest point of each run and key

    def _plan(self, member: Member) -> tuple[list[dict], int]:
        rows = member.read_table().to_pylist()
        wanted = [run_row(r, self.ctx.deleted_time) for r in rows]
        moved = ((r["artifact_uri"], w["artifact_uri"]) for r, w in zip(rows, wanted))
        # Only locations that change: a server's own `mlflow-artifacts:/` locations stay as they are.
        self.ctx.locations.put_many("run_location", [(source, dest, "") for source, dest in moved if source not in (None, dest)])
        wanted = self._outside_users_experiments(wanted)
        present = self.ctx.db.fetch(RUNS, "run_uuid", [w["run_uuid"] for w in wanted])
        new = []
        for want in wanted:
            have = present.get(want["run_uuid"])
            if have is None:
                new.append(want)
            elif any(have[k] != want[k] for k in COMPARED):
                raise ArchiveError(conflict(f"run {want['run_uuid']}", {k: want[k] for k in COMPARED}, dict(have)))
        return new, len(wanted) - len(new)

    def _outside_users_experiments(self, wanted: list[dict]) -> list[dict]:
        """The runs but those the archive puts in an experiment it does not hold, which the destination does: that
        experiment is the destination's own, and takes no runs from a restore (a note names it)."""
        unheld = {w["experiment_id"] for w in wanted} - self.ctx.archived_experiments
        users = self.ctx.db.fetch(EXPERIMENTS, "experiment_id", sorted(unheld)) if unheld else {}
        for experiment_id, experiment in sorted(users.items()):
            self.ctx.summary.leave_alone(
                f"experiment {experiment_id} ({experiment['name']!r}) is the destination's own, and the archive names it "
                "for runs without holding it: those runs were not restored"
            )
        return [w for w in wanted if w["experiment_id"] not in users]

    def check(self, member: Member) -> None:
        if member.stem == "runs":
            self._plan(member)

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            write_files(self.ctx, member, {run_id: run["artifact_uri"] for run_id, run in self.runs.items()})
            return
        if member.stem == "runs":
            new, self.skipped = self._plan(member)
            self.runs = {r["run_uuid"]: r for r in new}
            self._add(RUNS, new)
            return
        archived = member.read_table()
        kept = pc.is_in(archived["run_id"], pa.array(list(self.runs), pa.string()))
        table = archived if pc.all(kept).as_py() else archived.filter(kept)  # a copy only when runs are left out
        if member.stem in ("run_params", "run_tags"):
            target = SqlParam.__table__ if member.stem == "run_params" else SqlTag.__table__
            self.ctx.db.insert_arrow(self._connection(), target, table.rename_columns(["run_uuid", "key", "value"]))
        elif member.stem == "run_metrics":
            self._metrics(table)
            self.ctx.summary.add("metric_points", "skipped", archived.num_rows - table.num_rows)
        elif member.stem == "run_inputs":
            self._inputs(table)

    def _connection(self):
        """The chunk's transaction, opened by its first write."""
        if self.transaction is None:
            self.transaction = self.ctx.db.begin()
            self.conn = self.transaction.__enter__()
        return self.conn

    def _add(self, table: sa.Table, rows: list[dict]) -> None:
        self.ctx.db.insert(self._connection(), table, rows)

    def _metrics(self, table: pa.Table) -> None:
        """The member's points straight from Arrow into the database: memory holds one member, never a Python row per point."""
        value = table["value"]
        is_nan = pc.is_nan(value)
        value = pc.if_else(is_nan, 0.0, pc.max_element_wise(pc.min_element_wise(value, MAX_DOUBLE), -MAX_DOUBLE))
        points = pa.table({
            "key": table["key"], "timestamp": table["timestamp"], "step": table["step"],
            "run_uuid": table["run_id"], "value": value, "is_nan": is_nan,
        })
        # Primary-key order: the B-tree grows at its end instead of splitting pages everywhere.
        points = _distinct(points.sort_by([(c, "ascending") for c in points.column_names]))
        self.ctx.db.insert_arrow(self._connection(), SqlMetric.__table__, points)
        # A run's history can span several parts of the chunk: its latest point is known at the chunk's end.
        self.latest.append(_latest(points))
        self.ctx.summary.add("metric_points", "created", table.num_rows)

    def _inputs(self, table: pa.Table) -> None:
        """Each (experiment, name, digest) is one dataset row, shared by its runs, as MLflow's log_inputs makes it."""
        rows = table.to_pylist()
        if not rows:
            return
        datasets = SqlDataset.__table__
        experiments = {self.runs[r["run_id"]]["experiment_id"] for r in rows}
        conn = self._connection()  # the chunk's transaction: its reads see its own inserts
        known = {
            (d.experiment_id, d.name, d.digest): d.dataset_uuid
            for d in conn.execute(sa.select(datasets).where(datasets.c.experiment_id.in_(experiments)))
        }
        for r in rows:
            experiment_id = self.runs[r["run_id"]]["experiment_id"]
            dataset_key = (experiment_id, r["name"], r["digest"])
            if dataset_key not in known:
                known[dataset_key] = uuid.uuid4().hex
                self._add(datasets, [{
                    "dataset_uuid": known[dataset_key], "experiment_id": experiment_id, "name": r["name"], "digest": r["digest"],
                    "dataset_source_type": r["source_type"], "dataset_source": r["source"],
                    "dataset_schema": r["schema"], "dataset_profile": r["profile"],
                }])
            input_uuid = uuid.uuid4().hex
            self._add(SqlInput.__table__, [{
                "input_uuid": input_uuid, "source_type": "DATASET", "source_id": known[dataset_key],
                "destination_type": "RUN", "destination_id": r["run_id"],
            }])
            self._add(SqlInputTag.__table__, [{"input_uuid": input_uuid, "name": t["key"], "value": t["value"]} for t in r["tags"]])

    def end_chunk(self) -> None:
        if self.latest:
            self.ctx.db.insert_arrow(self._connection(), SqlLatestMetric.__table__, _latest(pa.concat_tables(self.latest)))
        # Members come runs first, so every foreign key (of params, tags, metrics, inputs) finds its run.
        if self.transaction is not None:
            self.transaction.__exit__(None, None, None)
        self.ctx.summary.add("runs", "created", len(self.runs))
        self.ctx.summary.add("runs", "skipped", self.skipped)
        self.ctx.progress.update("runs restored", self.ctx.summary.counts["runs"].created)
        self._reset()


def _distinct(ordered: pa.Table) -> pa.Table:
    """One row per primary key, as MLflow's log_batch keeps it (a file-store source can repeat a point): of sorted
    rows, those that differ from the row before."""
    if ordered.num_rows < 2:
        return ordered
    same = None
    for column in ordered.columns:
        equal = pc.equal(column[1:], column[:-1])
        same = equal if same is None else pc.and_(same, equal)
    if not pc.any(same).as_py():
        return ordered  # no copy in the usual case
    return ordered.filter(pa.chunked_array([pa.array([True]), pc.invert(same)]))


def _latest(points: pa.Table) -> pa.Table:
    """MLflow's latest metric: the greatest (step, timestamp, value) of each run and key."""
    ordered = points.sort_by([("run_uuid", "ascending"), ("key", "ascending"), ("step", "descending"),
                              ("timestamp", "descending"), ("value", "descending")])
    latest = ordered.group_by(["run_uuid", "key"], use_threads=False).aggregate(
        [(c, "first") for c in ("value", "timestamp", "step", "is_nan")]
    )
    return latest.rename_columns([n.removesuffix("_first") for n in latest.column_names])
