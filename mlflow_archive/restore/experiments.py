"""Experiments with their IDs, times and tags; artifact locations as the destination server would make them."""

from __future__ import annotations

import sqlalchemy as sa
from mlflow.entities import Experiment
from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlExperimentTag, SqlRun

from ..archive import Member
from ..database import ARTIFACTS_ROOT
from ..errors import ArchiveError
from . import RestoreContext, conflict, database_id

SECTION = "experiments"
EXPERIMENTS, TAGS = SqlExperiment.__table__, SqlExperimentTag.__table__
COMPARED = ("name", "lifecycle_stage", "creation_time", "last_update_time")


def experiment_row(row: dict) -> dict:
    experiment_id = database_id(row["experiment_id"], f"Experiment {row['name']!r}")
    return {
        "experiment_id": experiment_id,
        "name": row["name"],
        "artifact_location": f"{ARTIFACTS_ROOT}{experiment_id}",
        "lifecycle_stage": row["lifecycle_stage"],
        "creation_time": row["creation_time"],
        "last_update_time": row["last_update_time"],
    }


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx

    def _plan(self, member: Member) -> tuple[list[dict], list[dict], list[int]]:
        """(archive rows to insert, their experiment rows, IDs of MLflow's own fresh ``Default`` to overwrite)."""
        rows = member.read_table().to_pylist()
        wanted = [experiment_row(r) for r in rows]
        self.ctx.archived_experiments.update(w["experiment_id"] for w in wanted)
        present = self.ctx.db.fetch(EXPERIMENTS, "experiment_id", [w["experiment_id"] for w in wanted])
        by_name = self.ctx.db.fetch(EXPERIMENTS, "name", [w["name"] for w in wanted])
        new, new_rows, overwrite = [], [], []
        for row, want in zip(rows, wanted):
            have = present.get(want["experiment_id"])
            if have is None:
                taken = by_name.get(want["name"])
                if taken is not None:
                    raise ArchiveError(conflict(f"an experiment named {want['name']!r}", {"experiment_id": want["experiment_id"]},
                                                {"experiment_id": taken["experiment_id"]}))
                new.append(row)
                new_rows.append(want)
            elif all(have[k] == want[k] for k in COMPARED):
                continue
            elif self._is_setup_default(have):
                overwrite.append(want["experiment_id"])
                new.append(row)
                new_rows.append(want)
            else:
                raise ArchiveError(conflict(f"experiment {want['experiment_id']}", {k: want[k] for k in COMPARED}, dict(have)))
        return new, new_rows, overwrite

    def _is_setup_default(self, have) -> bool:
        """The ``Default`` experiment MLflow's schema set-up made: empty, so the archive's own experiment 0 replaces it."""
        if have["experiment_id"] != 0 or have["name"] != Experiment.DEFAULT_EXPERIMENT_NAME:
            return False
        with self.ctx.db.engine.connect() as conn:
            runs = conn.execute(sa.select(sa.func.count()).where(SqlRun.__table__.c.experiment_id == 0)).scalar()
            tags = conn.execute(sa.select(sa.func.count()).where(TAGS.c.experiment_id == 0)).scalar()
        return runs == 0 and tags == 0

    def check(self, member: Member) -> None:
        self._plan(member)

    def member(self, member: Member) -> None:
        new, new_rows, overwrite = self._plan(member)
        tags = [
            {"experiment_id": int(r["experiment_id"]), "key": t["key"], "value": t["value"]} for r in new for t in r["tags"]
        ]
        with self.ctx.db.begin() as conn:
            if overwrite:
                conn.execute(EXPERIMENTS.delete().where(EXPERIMENTS.c.experiment_id.in_(overwrite)))
            self.ctx.db.insert(conn, EXPERIMENTS, new_rows)
            self.ctx.db.insert(conn, TAGS, tags)
        self.ctx.summary.add("experiments", "created", len(new))
        self.ctx.summary.add("experiments", "skipped", member.info.rows - len(new))

    def end_chunk(self) -> None:
        pass
