"""``restore`` across databases: PostgreSQL → SQLite and SQLite → PostgreSQL.

Each source is filled in-process through MLflow's public client on the database URI (the shared
data set of ``tracking_data.py`` and a registered model), exported from that URI, restored into the
other kind of database, and compared field by field, IDs and every time included. The restored
PostgreSQL database is then served by a real ``mlflow server``.
"""

from __future__ import annotations

import subprocess
from contextlib import chdir
from pathlib import Path

import sqlalchemy as sa
from archive_cli import MLFLOW
from archive_cli import export as export_cli
from archive_cli import run as run_cli
from mlflow import MlflowClient
from mlflow_archive.archive import ArchiveReader
from restore_data import compare_exact, registry_diff, registry_state
from servers import start_server
from tracking_data import build_dataset

MODEL = "restored across databases"


def fill(uri: str, root: Path):
    root.mkdir()
    with chdir(root):  # MLflow's client on a database URI keeps artifacts in ./mlruns of the folder it is first used in
        data = build_dataset(uri)
        client = MlflowClient(uri)
        main = data.runs["main"]
        client.create_registered_model(MODEL, tags={"team": "a"}, description="kept across databases")
        for _ in range(3):
            # The archive writes an empty description or run link as null, and restore writes "" as a server stores
            # them; a client writing straight into the database stores null unless given "".
            client.create_model_version(MODEL, f"runs:/{main}/model", run_id=main, tags={"k": "v"}, run_link="", description="")
        client.delete_model_version(MODEL, "2")
        client.set_registered_model_alias(MODEL, "champion", "3")
    return data


def export_and_restore(source_uri: str, dest_uri: str, root: Path) -> Path:
    archive = root / "backup.mlar"
    export_cli(archive, source_uri, "--export-deleted-runs", "--export-deleted-experiments")
    run_cli("restore", "-i", archive, "--tracking-uri", dest_uri, "--artifacts-destination", root / "artifacts", "--quiet")
    return archive


def export_start(archive: Path) -> int:
    with open(archive, "rb") as stream:
        return ArchiveReader(stream).header["export"]["started_at_ms"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def deleted_files(artifacts: Path, run_ids: set[str]) -> list[Path]:
    return [p for p in artifacts.rglob("*") if p.is_file() and run_ids & set(p.parts)]


def test_postgresql_to_sqlite(postgres, tmp_path):
    source = postgres("logged")
    data = fill(source, tmp_path / "source")
    dest = f"sqlite:///{tmp_path / 'mlflow.db'}"
    archive = export_and_restore(source, dest, tmp_path)

    diffs = compare_exact(source, dest, check_artifacts=False)
    assert not diffs, "\n".join(diffs[:40])
    got, expected = registry_state(MlflowClient(dest), MODEL), registry_state(MlflowClient(source), MODEL)
    assert got == expected, registry_diff(got, expected)
    # Artifacts: each run's files where the server on the restored pair looks for them.
    for run_id in data.all_run_ids:
        run = MlflowClient(source).get_run(run_id)
        restored = tmp_path / "artifacts" / run.info.experiment_id / run_id / "artifacts"
        assert files(restored) == files(Path(run.info.artifact_uri.removeprefix("file://"))), run_id

    # Deleted runs get the export's start as their deletion time, so `mlflow gc --older-than` finds them.
    engine = sa.create_engine(dest)
    with engine.connect() as conn:
        deleted = dict(conn.execute(sa.text("SELECT run_uuid, deleted_time FROM runs WHERE lifecycle_stage = 'deleted'")).all())
    engine.dispose()
    assert deleted == {run_id: export_start(archive) for run_id in data.deleted_run_ids}


def test_sqlite_to_postgresql_then_served(postgres, tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    data = fill(source, tmp_path / "source")
    dest = postgres("restored_from_sqlite")
    export_and_restore(source, dest, tmp_path)

    server = start_server(tmp_path, backend_uri=dest)
    try:
        diffs = compare_exact(source, server.url)
        client = MlflowClient(server.url)
        highest = max(int(e.experiment_id) for e in client.search_experiments(view_type=3))
        experiment_id = client.create_experiment("created after restore")
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "after", 1.0)
        logged = client.get_run(run.info.run_id).data.metrics
        restored_deleted = deleted_files(tmp_path / "artifacts", data.deleted_run_ids)
        # `mlflow gc` as MLflow documents it for a server that proxies artifacts (a process of its own: it sets
        # the process-wide tracking URI).
        subprocess.run([MLFLOW, "gc", "--backend-store-uri", dest, "--tracking-uri", server.url, "--older-than", "1s"],
                       check=True, capture_output=True, timeout=120)
        remaining = {r.info.run_id for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments(view_type=3)], run_view_type=3)}
    finally:
        server.stop()
    assert not diffs, "\n".join(diffs[:40])
    # Both databases read by MLflow's own store, so that both sides are rendered alike.
    got, expected = registry_state(MlflowClient(dest), MODEL), registry_state(MlflowClient(source), MODEL)
    assert got == expected, registry_diff(got, expected)
    assert int(experiment_id) > highest and logged == {"after": 1.0}
    assert remaining == set(data.all_run_ids) - data.deleted_run_ids | {run.info.run_id}
    assert restored_deleted and not deleted_files(tmp_path / "artifacts", data.deleted_run_ids)
