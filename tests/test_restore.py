"""``restore``: an archive written into a database with every ID and time kept.

The shared data set is exported from ``source_server`` over REST, restored into a fresh SQLite
file and artifacts folder, and a real ``mlflow server`` on that pair is compared with the source
field by field, IDs and times included. Smaller cases use ``scratch_server``.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from archive_cli import MLFLOW, SCRATCH_CWD, import_counts
from archive_cli import export as export_cli
from archive_cli import run as run_cli
from mlflow import MlflowClient
from restore_data import MID_HISTORY, compare_exact, database_at_revision, database_rows, registry_diff, registry_state
from servers import start_server
from tracking_data import build_small_experiment, ms


def restore_cli(archive, root: Path, check: bool = True):
    """``restore`` into ``root/mlflow.db`` and ``root/artifacts``: the pair tests/servers.py starts a server on."""
    return run_cli("restore", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--artifacts-destination", root / "artifacts", "--quiet", check=check)


@pytest.fixture(scope="module")
def full_archive(tracking_dataset, source_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("restore-archive") / "full.mlar"
    export_cli(path, source_server.url, "--export-deleted-runs", "--export-deleted-experiments")
    return path


@pytest.fixture(scope="module")
def restored(full_archive, tmp_path_factory):
    root = tmp_path_factory.mktemp("restored")
    proc = restore_cli(full_archive, root)
    return root, proc, database_rows(f"sqlite:///{root / 'mlflow.db'}")  # the rows before any test writes more


def test_restore_round_trip_keeps_ids_and_times(tracking_dataset, source_server, restored):
    root, proc, _ = restored
    runs_created = import_counts(proc.stderr_text)["runs"][0]
    assert runs_created == len(tracking_dataset.all_run_ids)
    server = start_server(root)
    try:
        diffs = compare_exact(source_server.url, server.url)
        # The restored server keeps working: a new experiment and run get fresh IDs next to the restored ones.
        client = MlflowClient(server.url)
        experiment_id = client.create_experiment("created after restore")
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "after", 1.0)
        assert int(experiment_id) > max(int(e.experiment_id) for e in client.search_experiments(view_type=3) if e.experiment_id != experiment_id)
    finally:
        server.stop()
    assert not diffs, "\n".join(diffs[:40])


def test_restore_twice_writes_nothing(full_archive, restored):
    root, _, _ = restored
    before = database_rows(f"sqlite:///{root / 'mlflow.db'}")
    counts = import_counts(restore_cli(full_archive, root).stderr_text)
    assert counts["runs"][0] == 0 and counts["runs"][1] > 0
    assert counts["metric_points"][0] == 0
    assert database_rows(f"sqlite:///{root / 'mlflow.db'}") == before


def test_restore_killed_then_run_again(full_archive, restored, tmp_path):
    """A restore killed with SIGKILL at a random moment, then run again, leaves the same rows as one uninterrupted restore."""
    target = tmp_path / "killed"
    command = [MLFLOW, "archive", "restore", "-i", str(full_archive), "--tracking-uri", f"sqlite:///{target / 'mlflow.db'}",
               "--artifacts-destination", str(target / "artifacts"), "--quiet", "--no-verify"]
    process = subprocess.Popen(command, cwd=SCRATCH_CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(2.0, 5.0))  # the command takes a few seconds to import MLflow, then writes chunk by chunk
    process.kill()
    process.wait()
    restore_cli(full_archive, target)
    assert database_rows(f"sqlite:///{target / 'mlflow.db'}") == restored[2]
    files = sorted(p.relative_to(target / "artifacts") for p in (target / "artifacts").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(restored[0] / "artifacts") for p in (restored[0] / "artifacts").rglob("*") if p.is_file())


def test_restore_into_postgresql(full_archive, restored, postgres, tmp_path):
    """The same rows as in SQLite, and the experiment sequence moved past the restored IDs."""
    uri = postgres("restored")
    run_cli("restore", "-i", full_archive, "--tracking-uri", uri, "--artifacts-destination", tmp_path, "--quiet")
    assert database_rows(uri) == restored[2]
    counts = import_counts(run_cli("restore", "-i", full_archive, "--tracking-uri", uri,
                                   "--artifacts-destination", tmp_path, "--quiet").stderr_text)
    assert counts["runs"][0] == 0 and counts["runs"][1] > 0
    client = MlflowClient(uri)
    highest = max(int(e.experiment_id) for e in client.search_experiments(view_type=3))
    assert int(client.create_experiment("created after restore")) > highest


@pytest.fixture
def half_and_full(scratch_server, unique_prefix, tmp_path):
    """Archives of one experiment's first two runs and of all four."""
    name = f"{unique_prefix}restore"
    small = build_small_experiment(scratch_server.url, name, start_times=[ms(2024, 1, 1, h) for h in (10, 11, 12, 13)])
    half, full = tmp_path / "half.mlar", tmp_path / "full.mlar"
    export_cli(half, scratch_server.url, "--experiments", name, "--runs-until", "2024-01-01 11:30:00")
    export_cli(full, scratch_server.url, "--experiments", name)
    return small, half, full


def test_restore_over_an_earlier_part(half_and_full, tmp_path):
    """A restore of a larger archive over a smaller one adds only what is missing, and ends as a restore of it alone."""
    _, half, full = half_and_full
    restore_cli(half, tmp_path / "both")
    counts = import_counts(restore_cli(full, tmp_path / "both").stderr_text)
    assert counts["runs"] == (2, 2, 0)
    assert counts["experiments"] == (0, 1, 0)
    restore_cli(full, tmp_path / "full")
    both, alone = (database_rows(f"sqlite:///{tmp_path / where / 'mlflow.db'}", setup_default=False) for where in ("both", "full"))
    assert both == alone


def test_conflicting_run_refused_before_writing(half_and_full, tmp_path):
    small, half, full = half_and_full
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    restore_cli(half, tmp_path)
    MlflowClient(uri).update_run(small.run_ids[0], name="renamed elsewhere")
    before = database_rows(uri)
    proc = restore_cli(full, tmp_path, check=False)
    assert proc.returncode == 1
    error = proc.stderr_text.strip()
    assert error.startswith("Error: ") and error.count("\n") == 0, error
    assert f"run {small.run_ids[0]}" in error and "renamed elsewhere" in error
    assert database_rows(uri) == before  # the two runs the archive adds were not written either


def test_refused_restore_leaves_the_database_file_as_it_was(tmp_path):
    """Each refusal comes before anything touches the file: not even SQLite's journal mode changes (MLflow's own
    store leaves a file in rollback-journal mode; a restore's writes switch it to WAL)."""
    import hashlib
    import shutil
    import sqlite3

    source = f"sqlite:///{tmp_path / 'source.db'}"
    client = MlflowClient(source)
    run = client.create_run(client.create_experiment("kept", artifact_location=str(tmp_path / "source-artifacts")))
    client.log_param(run.info.run_id, "p", "1")
    archive, damaged = tmp_path / "kept.mlar", tmp_path / "damaged.mlar"
    export_cli(archive, source)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(data)
    # Experiment 1 of the destination is another "kept": created at another time.
    MlflowClient(f"sqlite:///{tmp_path / 'taken' / 'mlflow.db'}").create_experiment("kept", artifact_location=str(tmp_path / "a"))
    (tmp_path / "other-revision").mkdir()
    shutil.copy(tmp_path / "taken" / "mlflow.db", tmp_path / "other-revision" / "mlflow.db")
    with sqlite3.connect(tmp_path / "other-revision" / "mlflow.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'an0ther'")

    def refused(given, where: str) -> str:
        db = tmp_path / where / "mlflow.db"
        digest = hashlib.sha256(db.read_bytes()).hexdigest()
        error = run_cli("restore", "-i", given, "--tracking-uri", f"sqlite:///{db}",
                        "--artifacts-destination", tmp_path / where / "artifacts", "--quiet", check=False).error_line()
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest, error
        assert not (tmp_path / where / "artifacts").exists()
        return error

    error = refused(archive, "taken")
    assert "The destination already holds experiment 1 with other content (creation_time " in error, error
    assert " in the archive, " in error and " in the database" in error, error
    assert "has MLflow schema revision an0ther" in refused(archive, "other-revision")
    assert "damaged" in refused(damaged, "taken").lower()
    assert "not a stream" in refused("-", "taken")


def test_registry_round_trip(scratch_server, unique_prefix, tmp_path):
    """Registered models and versions keep numbers (with a deleted version's gap), stages, status, times, aliases and tags."""
    client = MlflowClient(scratch_server.url)
    small = build_small_experiment(scratch_server.url, f"{unique_prefix}reg", n_runs=1)
    name = f"{unique_prefix}model"
    client.create_registered_model(name, tags={"team": "a"}, description="restored exactly")
    for _ in range(3):
        client.create_model_version(name, f"runs:/{small.run_ids[0]}/out", run_id=small.run_ids[0], tags={"k": "v"})
    client.delete_model_version(name, "2")
    client.transition_model_version_stage(name, "3", "Staging")
    client.set_registered_model_alias(name, "champion", "3")
    archive = tmp_path / "models.mlar"
    export_cli(archive, scratch_server.url, "--models", name)
    counts = import_counts(restore_cli(archive, tmp_path).stderr_text)
    assert counts["model_versions"] == (2, 0, 0)
    # Both databases read by MLflow's own store, so that both sides are rendered alike.
    restored, source = (registry_state(MlflowClient(uri), name) for uri in (f"sqlite:///{tmp_path / 'mlflow.db'}", scratch_server.backend_uri))
    assert restored == source, registry_diff(restored, source)
    assert [v["version"] for v in restored[1]] == [1, 3]


def test_other_schema_revision_refused(half_and_full, tmp_path):
    _, half, _ = half_and_full
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    restore_cli(half, tmp_path)
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'an0ther'"))
    engine.dispose()
    proc = restore_cli(half, tmp_path, check=False)
    assert proc.returncode == 1
    assert "has MLflow schema revision an0ther, but the installed MLflow writes revision" in proc.stderr_text


def test_schema_creation_cut_off_is_begun_again(half_and_full, tmp_path):
    """A database left at an earlier revision with no data (a restore killed while MLflow's migrations ran) is restored into."""
    from mlflow.store.db.base_sql_model import Base

    _, half, _ = half_and_full
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    database_at_revision(uri, MID_HISTORY)
    restore_cli(half, tmp_path)
    rows = database_rows(uri)
    assert len(rows["runs"]) > 0
    assert set(Base.metadata.tables) <= set(sa.inspect(sa.create_engine(uri)).get_table_names())


def test_history_split_across_parts_keeps_one_latest_metric(tmp_path):
    """A long history is written in several parts of one chunk: the latest point is the greatest of all of them,
    and a point repeated whole is written once."""
    from mlflow_archive.archive import ArchiveWriter

    run_id, archive = "a" * 32, tmp_path / "split.mlar"
    with open(archive, "wb") as out:
        writer = ArchiveWriter(out, {"source": {"tracking_uri": "test"}}, 0)
        writer.chunk("experiments").write_table("experiments", {
            "experiment_id": ["1"], "name": ["split"], "artifact_location": [None], "lifecycle_stage": ["active"],
            "creation_time": [1], "last_update_time": [2], "tags": [[]],
        })
        chunk = writer.chunk("runs")
        chunk.write_table("runs", {
            "run_id": [run_id], "experiment_id": ["1"], "run_name": ["r"], "user_id": ["u"], "status": ["FINISHED"],
            "start_time": [1], "end_time": [2], "lifecycle_stage": ["active"], "artifact_uri": [None],
        })
        with chunk.table("run_metrics") as sink:
            for steps in (range(0, 5), [5, 6, 7, 8, 9, 9]):  # one part each; the last point twice, as a file store can hold it
                sink.append({"run_id": [run_id] * len(steps), "key": ["loss"] * len(steps), "value": [float(s) for s in steps],
                             "timestamp": [100 + s for s in steps], "step": list(steps)})
                sink.flush()
        writer.close()

    restore_cli(archive, tmp_path / "restored")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'restored' / 'mlflow.db'}")
    with engine.connect() as conn:
        latest = conn.execute(sa.text("SELECT key, value, step FROM latest_metrics WHERE run_uuid = :r"), {"r": run_id}).all()
        points = conn.execute(sa.text("SELECT count(*) FROM metrics WHERE run_uuid = :r"), {"r": run_id}).scalar()
    engine.dispose()
    assert [tuple(row) for row in latest] == [("loss", 9.0, 9)] and points == 10
