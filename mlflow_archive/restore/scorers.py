"""Scorers with their IDs, every version with its number (gaps kept) and creation time, and online scoring configs.

A chunk's scorers, versions and configurations go in one transaction; a scorer already present with the same
experiment and name was written whole by an earlier restore and is skipped with its versions and configurations.
Serialized scorers are written as the archive carries them: a judge on a gateway endpoint keeps the endpoint's
ID (from a database export), which names an endpoint only on a destination that holds the source's gateway.
"""

from __future__ import annotations

from mlflow.store.tracking.dbmodels.models import SqlOnlineScoringConfig, SqlScorer, SqlScorerVersion

from ..archive import Member
from . import RestoreContext, missing_rows

SECTION = "scorers"
SCORERS = SqlScorer.__table__
COMPARED = ("experiment_id", "scorer_name")


def scorer_row(row: dict) -> dict:
    return {"scorer_id": row["scorer_id"], "experiment_id": int(row["experiment_id"]), "scorer_name": row["name"]}


def version_row(row: dict) -> dict:
    return {"scorer_id": row["scorer_id"], "scorer_version": row["version"], "serialized_scorer": row["serialized_scorer"],
            "creation_time": row["creation_time"]}


def config_row(row: dict) -> dict:
    return {**row, "experiment_id": int(row["experiment_id"])}


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self.tables: dict[str, list[dict]] = {}  # the current chunk's rows, by archive table

    def _new_scorers(self, rows: list[dict]) -> list[dict]:
        return missing_rows(self.ctx, SCORERS, "scorer_id", rows, scorer_row, COMPARED, "scorer {}")

    def check(self, member: Member) -> None:
        if member.stem == SECTION:
            self._new_scorers(member.read_table().to_pylist())

    def member(self, member: Member) -> None:
        self.tables[member.stem] = member.read_table().to_pylist()

    def end_chunk(self) -> None:
        tables, self.tables = self.tables, {}
        new = {r["scorer_id"] for r in self._new_scorers(tables.get(SECTION, []))}
        written = {
            (stem, table): [row_of(r) for r in tables.get(stem, []) if r["scorer_id"] in new]
            for stem, table, row_of in (
                (SECTION, SCORERS, scorer_row),
                ("scorer_versions", SqlScorerVersion.__table__, version_row),
                ("online_scoring_configs", SqlOnlineScoringConfig.__table__, config_row),
            )
        }
        with self.ctx.db.begin() as conn:
            for (_, table), rows in written.items():
                self.ctx.db.insert(conn, table, rows)
        for (stem, _), rows in written.items():
            self.ctx.summary.add(stem, "created", len(rows))
            self.ctx.summary.add(stem, "skipped", len(tables.get(stem, [])) - len(rows))
