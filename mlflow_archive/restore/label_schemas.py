"""Label schemas with their IDs, times, creator and default flag, as stored.

A schema already present with the same experiment, name and creation time was written by an earlier restore and is
skipped. A default schema is written like any other: the restored experiment then has the source's default, and
MLflow, which writes one only into an experiment without any, writes none.
"""

from __future__ import annotations

from mlflow.store.tracking.dbmodels.models import SqlLabelSchema

from . import OwnedRestorer

SECTION = "label_schemas"


def schema_row(row: dict) -> dict:
    config = row["input_config_json"]
    return {**{k: v for k, v in row.items() if k != "input_config_json"}, "experiment_id": int(row["experiment_id"]),
            "input_config": config}


class Restorer(OwnedRestorer):
    SECTION, KEY, WHAT = SECTION, "schema_id", "label schema {}"
    COMPARED = ("experiment_id", "name", "created_time")
    TABLES = ((SECTION, SqlLabelSchema.__table__, schema_row),)
