"""Scorers with their IDs, every version with its number (gaps kept) and creation time, and online scoring configs.

A chunk's scorers, versions and configurations go in one transaction; a scorer already present with the same
experiment and name was written whole by an earlier restore and is skipped with its versions and configurations.
Serialized scorers are written as the archive carries them: a judge on a gateway endpoint keeps the endpoint's
ID (from a database export), which names an endpoint only on a destination that holds the source's gateway.
"""

from __future__ import annotations

from mlflow.store.tracking.dbmodels.models import SqlOnlineScoringConfig, SqlScorer, SqlScorerVersion

from . import OwnedRestorer

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


class Restorer(OwnedRestorer):
    SECTION, KEY, COMPARED, WHAT = SECTION, "scorer_id", COMPARED, "scorer {}"
    TABLES = (
        (SECTION, SCORERS, scorer_row),
        ("scorer_versions", SqlScorerVersion.__table__, version_row),
        ("online_scoring_configs", SqlOnlineScoringConfig.__table__, config_row),
    )
