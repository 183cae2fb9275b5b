"""Comparison helpers for ``restore``: the destination must equal the source, IDs and times included."""

from __future__ import annotations

import sqlalchemy as sa
from compare import all_experiments, compare_servers
from mlflow import MlflowClient

# Rows restore writes, per table; the UUIDs MLflow draws at random for datasets, inputs and entity associations
# are left out (the archive does not carry them, nor an association's time), the rows that name them are compared
# by their other columns.
RESTORED_TABLES = {
    "experiments": None, "experiment_tags": None, "runs": None, "params": None, "tags": None,
    "metrics": None, "latest_metrics": None,
    "datasets": ("experiment_id", "name", "digest", "dataset_source_type", "dataset_source", "dataset_schema", "dataset_profile"),
    "inputs": ("source_type", "destination_type", "destination_id", "step"),
    "input_tags": ("name", "value"),
    "logged_models": None, "logged_model_params": None, "logged_model_tags": None, "logged_model_metrics": None,
    "registered_models": None, "registered_model_tags": None, "registered_model_aliases": None,
    "model_versions": None, "model_version_tags": None,
    "trace_info": None, "trace_tags": None, "trace_request_metadata": None, "spans": None, "assessments": None,
    "entity_associations": ("source_type", "source_id", "destination_type", "destination_id"),
    "evaluation_datasets": None, "evaluation_dataset_tags": None, "evaluation_dataset_records": None,
}


def compare_exact(source_uri: str, dest_uri: str, experiment_names=None, check_artifacts: bool = True) -> list[str]:
    """Every difference between two servers, matching experiments and runs by their own IDs and comparing every time.

    ``check_artifacts=False`` for a destination database without its server (``mlflow-artifacts:/`` URIs need one)."""
    comparison = compare_servers(
        source_uri, dest_uri, experiment_names=experiment_names, match_by_id=True,
        require_experiment_source_tag=False, raise_on_difference=False, check_artifacts=check_artifacts,
    )
    diffs = list(comparison.differences)
    src, dst = MlflowClient(source_uri), MlflowClient(dest_uri)
    dst_by_id = {e.experiment_id: e for e in all_experiments(dst)}
    wanted = None if experiment_names is None else set(experiment_names)
    for exp in all_experiments(src):
        if wanted is not None and exp.name not in wanted:
            continue
        got = dst_by_id.get(exp.experiment_id)
        if got is None:
            diffs.append(f"experiment {exp.name!r}: no destination experiment with ID {exp.experiment_id}")
            continue
        for attr in ("name", "lifecycle_stage", "creation_time", "last_update_time"):
            if getattr(exp, attr) != getattr(got, attr):
                diffs.append(f"experiment {exp.experiment_id} {attr}: source {getattr(exp, attr)!r}, destination {getattr(got, attr)!r}")
    for source_id, dest_id in comparison.run_map.items():
        if source_id != dest_id:
            diffs.append(f"run {source_id} arrived as {dest_id}")
    return diffs


def database_rows(uri: str, setup_default: bool = True) -> dict[str, list[tuple]]:
    """The rows restore writes, sorted, table by table (a whole database, for comparing two restores of one archive).

    ``setup_default=False`` leaves out experiment 0, which MLflow's schema set-up creates with the time of its run
    when the archive holds no experiment 0.
    """
    engine = sa.create_engine(uri)
    try:
        meta = sa.MetaData()
        meta.reflect(engine, only=list(RESTORED_TABLES))
        out = {}
        with engine.connect() as conn:
            for name, columns in RESTORED_TABLES.items():
                table = meta.tables[name]
                selected = [table.c[c] for c in columns] if columns else list(table.c)
                query = sa.select(*selected)
                if name == "experiments" and not setup_default:
                    query = query.where(table.c.experiment_id != 0)
                out[name] = sorted(tuple(map(repr, row)) for row in conn.execute(query))
        return out
    finally:
        engine.dispose()


def registry_state(client: MlflowClient, name: str) -> tuple[dict, list[dict]]:
    """A registered model (its latest versions included) and all its versions, as plain dicts."""
    found = dict(client.get_registered_model(name))
    model = {**found, "latest_versions": [dict(v) for v in found["latest_versions"]]}
    versions = sorted((dict(v) for v in client.search_model_versions(f"name = '{name}'")), key=lambda v: v["version"])
    return model, versions


def registry_diff(got: tuple[dict, list[dict]], expected: tuple[dict, list[dict]]) -> str:
    """The fields in which two ``registry_state`` results differ, for an assertion message."""
    pairs = [(got[0], expected[0])] + list(zip(got[0]["latest_versions"], expected[0]["latest_versions"])) + list(zip(got[1], expected[1]))
    return str([(k, a[k], b.get(k)) for a, b in pairs for k in a if a[k] != b.get(k)])


MID_HISTORY = "a8c4a736bde6"  # a schema revision from the middle of MLflow's history


def database_at_revision(uri: str, revision: str) -> None:
    """MLflow's schema as an older MLflow left it: the initial tables, then MLflow's migrations up to ``revision``."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sa.create_engine(uri)
    InitialBase.metadata.create_all(engine)
    engine.dispose()
    command.upgrade(_get_alembic_config(uri), revision)
