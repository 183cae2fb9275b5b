"""Issues with their IDs, times, last updater and stored last-seen time, and their category index as the archive
carries it.

A chunk's issues and index rows go in one transaction; an issue already present with the same experiment, name and
creation time was written by an earlier restore and is skipped with its index rows. Root causes, categories and
metadata are written as MLflow writes them (JSON text; null when empty).
"""

from __future__ import annotations

import json

from mlflow.store.tracking.dbmodels.models import SqlIssue, SqlIssueCategory

from . import OwnedRestorer

SECTION = "issues"


def issue_row(row: dict) -> dict:
    metadata = {kv["key"]: kv["value"] for kv in row["metadata"] or []}
    return {
        **row,
        "experiment_id": int(row["experiment_id"]),
        "root_causes": json.dumps(row["root_causes"]) if row["root_causes"] else None,
        "categories": json.dumps(row["categories"]) if row["categories"] else None,
        "metadata": json.dumps(metadata) if metadata else None,
    }


class Restorer(OwnedRestorer):
    SECTION, KEY, WHAT = SECTION, "issue_id", "issue {}"
    COMPARED = ("experiment_id", "name", "created_timestamp")
    TABLES = (
        (SECTION, SqlIssue.__table__, issue_row),
        ("issue_categories", SqlIssueCategory.__table__, dict),
    )
