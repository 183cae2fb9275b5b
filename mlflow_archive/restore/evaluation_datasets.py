"""Evaluation datasets with their IDs, times, creators, digest, schema, profile, tags and experiment links; every record
with its ID, times, creators, inputs, outputs, expectations, tags and source.

A chunk's rows go in one transaction, inserted member by member and committed at ``end_chunk``. A dataset
already present with the same content was written whole by an earlier restore and is skipped with its records.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from mlflow.entities.dataset_record import DATASET_RECORD_WRAPPED_OUTPUT_KEY
from mlflow.entities.entity_type import EntityAssociationType
from mlflow.store.tracking.dbmodels.models import (
    SqlEntityAssociation,
    SqlExperiment,
    SqlEvaluationDataset,
    SqlEvaluationDatasetRecord,
    SqlEvaluationDatasetTag,
)

from ..archive import Member
from . import RestoreContext, is_database_id, json_column, missing_rows

SECTION = "evaluation_datasets"
RECORDS = "evaluation_dataset_records"
DATASETS = SqlEvaluationDataset.__table__
COMPARED = ("name", "created_time", "last_update_time", "digest", "created_by", "last_updated_by")


def dataset_row(row: dict) -> dict:
    return {
        "dataset_id": row["dataset_id"], "name": row["name"], "schema": row["schema_json"], "profile": row["profile_json"],
        "digest": row["digest"], "created_time": row["created_time"], "last_update_time": row["last_update_time"],
        "created_by": row["created_by"], "last_updated_by": row["last_updated_by"],
    }


def record_row(row: dict) -> dict:
    """As MLflow's upsert_dataset_records stores a record: outputs wrapped, inputs hashed for its uniqueness check."""
    what = f"Record {row['record_id']} of evaluation dataset {row['dataset_id']}"
    inputs = json_column(row, "inputs_json", what)
    outputs = None if row["outputs_json"] is None else json_column(row, "outputs_json", what)
    source = None
    if row["source_type"] is not None:
        source = {"source_type": row["source_type"],
                  "source_data": json_column(row, "source_data_json", what) if row["source_data_json"] else {}}
    return {
        "dataset_record_id": row["record_id"], "dataset_id": row["dataset_id"], "inputs": inputs,
        "outputs": None if outputs is None else {DATASET_RECORD_WRAPPED_OUTPUT_KEY: outputs},
        "expectations": None if row["expectations_json"] is None else json_column(row, "expectations_json", what),
        "tags": {t["key"]: t["value"] for t in row["tags"]} or None,
        "source": source, "source_id": row["source_id"], "source_type": row["source_type"],
        "created_time": row["created_time"], "last_update_time": row["last_update_time"],
        "created_by": row["created_by"], "last_updated_by": row["last_updated_by"],
        "input_hash": hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(),
    }


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.datasets: set[str] = set()  # IDs of the datasets this chunk writes
        self.transaction = self.conn = None
        self.skipped = 0

    def _plan(self, member: Member) -> tuple[list[dict], list[dict]]:
        rows = member.read_table().to_pylist()
        return rows, missing_rows(self.ctx, DATASETS, "dataset_id", rows, dataset_row, COMPARED, "evaluation dataset {}")

    def check(self, member: Member) -> None:
        if member.stem == SECTION:
            self._plan(member)
        else:
            for row in member.read_table().to_pylist():
                record_row(row)  # refuses a record whose JSON columns are not JSON

    def member(self, member: Member) -> None:
        if member.stem == SECTION:
            rows, new = self._plan(member)
            self.skipped = len(rows) - len(new)
            self.datasets = {r["dataset_id"] for r in new}
            self._insert(DATASETS, [dataset_row(r) for r in new])
            self._insert(SqlEvaluationDatasetTag.__table__, [
                {"dataset_id": r["dataset_id"], "key": t["key"], "value": t["value"]} for r in new for t in r["tags"]
            ])
            self._link(new)
            return
        records = [record_row(r) for r in member.read_table().to_pylist() if r["dataset_id"] in self.datasets]
        self._insert(SqlEvaluationDatasetRecord.__table__, records)
        self.ctx.summary.add(RECORDS, "created", len(records))
        self.ctx.summary.add(RECORDS, "skipped", member.info.rows - len(records))

    def _link(self, datasets: list[dict]) -> None:
        """The links create_dataset makes, to the experiments the destination holds (the archive may lack some).

        The archive holds no link's own time: each gets its dataset's creation time.
        """
        wanted = {int(e) for r in datasets for e in r["experiment_ids"] if is_database_id(e)}
        held = {str(e) for e in self.ctx.db.fetch(SqlExperiment.__table__, "experiment_id", wanted)}
        dropped = [r["name"] for r in datasets if set(r["experiment_ids"]) - held]
        if dropped:
            self.ctx.summary.note(
                f"{len(dropped)} evaluation dataset(s) lost links to experiments that neither the archive nor the "
                f"destination holds (e.g. {dropped[0]!r})"
            )
        self._insert(SqlEntityAssociation.__table__, [{
            "association_id": uuid.uuid4().hex,
            "source_type": EntityAssociationType.EVALUATION_DATASET, "source_id": r["dataset_id"],
            "destination_type": EntityAssociationType.EXPERIMENT, "destination_id": experiment_id,
            "created_time": r["created_time"],
        } for r in datasets for experiment_id in r["experiment_ids"] if experiment_id in held])

    def _insert(self, table, rows: list[dict]) -> None:
        """Into the chunk's transaction, opened by its first write."""
        if self.transaction is None:
            self.transaction = self.ctx.db.begin()
            self.conn = self.transaction.__enter__()
        self.ctx.db.insert(self.conn, table, rows)

    def end_chunk(self) -> None:
        if self.transaction is not None:
            self.transaction.__exit__(None, None, None)
        self.ctx.summary.add(SECTION, "created", len(self.datasets))
        self.ctx.summary.add(SECTION, "skipped", self.skipped)
        self._reset()
