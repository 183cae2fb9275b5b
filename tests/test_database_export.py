"""Export straight from a tracking database (``--tracking-uri sqlite:///...``), inside one snapshot.

The shared data set is exported twice: over REST from ``source_server``, and from that server's
own SQLite file and artifacts folder. Both archives must hold the same members and rows (only the
header's description of the source may differ), and a restore of the database export must give
back the source's rows and files. A second SQLite database is exported while another process keeps
logging into it: every run in the archive must be exactly as it was at one instant.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from archive_cli import export as export_cli
from archive_cli import export_counts
from archive_cli import run as run_cli
from archive_tables import archive_contents
from database_export_data import (
    LIVE_KEYS,
    LIVE_STEPS,
    changed_header_fields,
    header,
    member_digests,
    rows_restore_keeps,
    snapshot_consistency,
    table_differences,
)
from datasets_data import build_datasets
from mlflow import MlflowClient
from prompts_data import build_prompts_dataset
from restore_data import MID_HISTORY, database_at_revision, database_rows
from traces_data import build_traces
from tracking_data import build_small_experiment

from mlflow_archive import archive, export_archive
from mlflow_archive.archive import ArchiveReader


# Table parts of about 16 kB instead of 32 MB: the metric histories span several parts, so the member comparison
# also checks that both exports cut them at the same rows (a writer starts a part after so many in-memory bytes).
SMALL_PARTS = 16 << 10


@pytest.fixture(scope="module")
def both_archives(tracking_dataset, source_server, tmp_path_factory):
    """The same data exported over REST and from the database, with every option that widens the export."""
    root = tmp_path_factory.mktemp("database-export")
    options = ("--export-deleted-runs", "--export-deleted-experiments")
    rest, database = root / "rest.mlar", root / "database.mlar"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(archive, "TABLE_PART_TARGET", SMALL_PARTS)
        export_cli(rest, source_server.url, *options)
        proc = export_cli(database, source_server.backend_uri, "--artifacts-destination", source_server.artifacts_path, *options)
    return rest, database, proc


def test_database_export_equals_rest_export(both_archives):
    rest, database, proc = both_archives
    rest_tables, rest_files = archive_contents(rest)
    db_tables, db_files = archive_contents(database)
    differences = table_differences(rest_tables, db_tables)
    assert not differences, "\n".join(differences)
    assert db_files == rest_files
    assert export_counts(proc.stderr_text)["runs"] == len(rest_tables["runs"])
    # Same members, byte for byte, but for the header (and the trailer, which lists the header's hash).
    rest_members, db_members = member_digests(rest), member_digests(database)
    assert list(db_members) == list(rest_members)
    assert sum("run_metrics-" in name for name in rest_members) > 1
    assert {name for name in rest_members if rest_members[name] != db_members[name]} == {"header.json.zst", "trailer.json.zst"}
    # The header says how the source was read, and only that differs.
    assert changed_header_fields(rest, database) - {"export.started_at"} == {  # seconds: the same in a fast run
        "source.tracking_uri", "source.registry_uri", "source.schema_revision", "source.snapshot.isolation",
        "source.snapshot.taken_at_ms",
        "export.started_at_ms", "export.cutoff_time_ms", "export.options.artifacts_destination",
    }


def test_restore_of_database_export_gives_back_the_source(both_archives, source_server, tmp_path):
    _, database, _ = both_archives
    target = tmp_path / "restored"
    run_cli("restore", "-i", database, "--tracking-uri", f"sqlite:///{target / 'mlflow.db'}",
            "--artifacts-destination", target / "artifacts", "--quiet")
    source_rows = rows_restore_keeps(source_server.backend_uri, database)
    restored_rows = database_rows(f"sqlite:///{target / 'mlflow.db'}")
    for table in source_rows:
        assert restored_rows[table] == source_rows[table], f"table {table} differs after restore"
    source_files = {p.relative_to(source_server.artifacts_path): p.read_bytes()
                    for p in source_server.artifacts_path.rglob("*") if p.is_file()}
    restored_files = {p.relative_to(target / "artifacts"): p.read_bytes()
                      for p in (target / "artifacts").rglob("*") if p.is_file()}
    assert restored_files == source_files


def test_export_from_postgresql(both_archives, postgres, tmp_path):
    """The REST archive restored into PostgreSQL (IDs and times kept), exported from there: the same tables again,
    read in a REPEATABLE READ READ ONLY snapshot."""
    rest, _, _ = both_archives
    uri, artifacts, again = postgres("exported"), tmp_path / "artifacts", tmp_path / "again.mlar"
    run_cli("restore", "-i", rest, "--tracking-uri", uri, "--artifacts-destination", artifacts, "--quiet")
    export_cli(again, uri, "--artifacts-destination", artifacts, "--export-deleted-runs", "--export-deleted-experiments")
    rest_tables, rest_files = archive_contents(rest)
    again_tables, again_files = archive_contents(again)
    differences = table_differences(rest_tables, again_tables)
    assert not differences, "\n".join(differences)
    assert again_files == rest_files
    assert header(again)["source"]["snapshot"]["isolation"] == "postgresql repeatable read read only"


def test_every_kind_equals_rest_export(scratch_server, unique_prefix, tmp_path):
    """Logged models, the registry, prompts, traces (spans in the database and in a traces.json artifact) and
    evaluation datasets: read through MLflow's store inside the snapshot, they make the same members as over REST."""
    uri = scratch_server.url
    build_traces(uri, f"{unique_prefix}traces")  # with a logged model (the active model of a trace)
    build_prompts_dataset(uri, unique_prefix)
    build_datasets(uri, unique_prefix)
    client = MlflowClient(uri)
    run = client.create_run(client.get_experiment_by_name(f"{unique_prefix}traces").experiment_id)
    client.create_registered_model(f"{unique_prefix}model", tags={"team": "ü"}, description="a model")
    client.create_model_version(f"{unique_prefix}model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    selectors = ("--experiments", f"{unique_prefix}*", "--models", f"{unique_prefix}*", "--prompts", f"{unique_prefix}*")
    rest, database = tmp_path / "rest.mlar", tmp_path / "database.mlar"
    export_cli(rest, uri, *selectors)
    export_cli(database, scratch_server.backend_uri, "--artifacts-destination", scratch_server.artifacts_path, *selectors)
    rest_tables, rest_files = archive_contents(rest)
    db_tables, db_files = archive_contents(database)
    assert {"logged_models", "registered_models", "prompts", "traces", "spans", "assessments", "evaluation_datasets"} <= set(rest_tables)
    # The one documented difference (FORMAT.md 7.1): over REST an expectation has no `valid` flag (MLflow's
    # Expectation.from_proto drops it), read from the database it has the stored one.
    unflagged = [i for i, row in enumerate(rest_tables["assessments"]) if row["valid"] is None]
    assert unflagged and all(rest_tables["assessments"][i]["kind"] == "expectation" for i in unflagged)
    assert all(db_tables["assessments"][i]["valid"] is True for i in unflagged)
    for i in unflagged:
        db_tables["assessments"][i]["valid"] = None
    differences = table_differences(rest_tables, db_tables)
    assert not differences, "\n".join(differences)
    assert db_files == rest_files
    rest_members, db_members = member_digests(rest), member_digests(database)
    differing = {name for name in rest_members.keys() | db_members.keys() if rest_members.get(name) != db_members.get(name)}
    assert {"header.json.zst", "trailer.json.zst"} <= differing
    assert all(name.startswith("traces/") and "/assessments-" in name for name in differing - {"header.json.zst", "trailer.json.zst"})


def test_export_without_artifacts_destination_is_refused(source_server, tmp_path):
    archive = tmp_path / "refused.mlar"
    proc = export_cli(archive, source_server.backend_uri, check=False)
    assert proc.one_line_error() is None, proc.one_line_error()
    assert "add --artifacts-destination" in proc.stderr_text
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial file


def test_wrong_artifacts_destination_is_refused(scratch_server, unique_prefix, tmp_path):
    """A folder that holds none of the database's files (a typo, an existing but wrong folder) is one sentence
    before anything is written."""
    from mlflow.entities import LoggedModelStatus

    client = MlflowClient(scratch_server.url)
    modelled = build_small_experiment(scratch_server.url, f"{unique_prefix}modelled", n_runs=1)
    model = client.create_logged_model(modelled.experiment_id, source_run_id=modelled.run_ids[0])
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    client.log_model_artifacts(model.model_id, str(tmp_path / "model"))
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)

    def export(destination, check: bool = True):
        return export_cli(tmp_path / "x.mlar", scratch_server.backend_uri, "--experiments", modelled.name,
                          "--artifacts-destination", destination, check=check)

    (tmp_path / "empty").mkdir()
    for wrong in (tmp_path / "artifactz", tmp_path / "empty"):
        error = export(wrong, check=False).error_line()
        assert f"--artifacts-destination {wrong} is empty or missing, but the database" in error, error
        assert not (tmp_path / "x.mlar").exists()
    error = export(scratch_server.root, check=False).error_line()  # the server's folder, one level too high
    assert f"--artifacts-destination {scratch_server.root} holds no folder of the database" in error, error
    assert not (tmp_path / "x.mlar").exists()
    proc = export(scratch_server.artifacts_path)
    assert export_counts(proc.stderr_text)["artifact_files"] == 2 and "note:" not in proc.stderr_text  # the run's and the model's


def test_artifacts_destination_of_a_database_without_files(tmp_path):
    """A database whose server never stored a file: its folder may never have been made, so a missing one is
    refused (it could be a typo) and an empty one is taken, with a note."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_run(client.create_experiment("metrics only", artifact_location="mlflow-artifacts:/1"))
    missing, empty = tmp_path / "mlartifacts", tmp_path / "empty"
    error = export_cli(tmp_path / "x.mlar", uri, "--artifacts-destination", missing, check=False).error_line()
    assert f"--artifacts-destination {missing} does not exist" in error and "an empty folder if" in error, error
    empty.mkdir()
    proc = export_cli(tmp_path / "x.mlar", uri, "--artifacts-destination", empty)
    assert f"note: --artifacts-destination {empty} is empty: the archive holds no files" in proc.stderr_text


WRITER = textwrap.dedent(f"""
    import sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag
    client = MlflowClient(sys.argv[1])
    experiment_id = client.create_experiment("live")
    progress = open(sys.argv[2], "w")
    while True:
        run_id = client.create_run(experiment_id).info.run_id
        for step in range({LIVE_STEPS}):
            # One transaction: the points of this step for every key, and the tag that counts them.
            metrics = [Metric(f"k{{k}}", float(step), int(time.time() * 1000), step) for k in range({LIVE_KEYS})]
            client.log_batch(run_id, metrics=metrics, tags=[RunTag("steps_logged", str(step + 1))])
            progress.write("."); progress.flush()
""")


@pytest.mark.parametrize("journal_mode, isolation", [("wal", "sqlite read transaction"), ("delete", "sqlite backup copy")])
def test_export_is_one_snapshot_of_a_live_database(tmp_path, journal_mode, isolation):
    """A process keeps logging runs while the database is exported: every run in the archive is whole as of one
    instant, and the writer is not held off (in rollback-journal mode, MLflow's default, the export reads a copy)."""
    db = tmp_path / "live.db"
    uri = f"sqlite:///{db}"
    import sqlite3

    progress = tmp_path / "progress"
    from mlflow import MlflowClient

    MlflowClient(uri).search_experiments()  # MLflow's schema, before the writer and the export open it
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, uri, str(progress)], stderr=subprocess.DEVNULL)
    try:
        while not progress.exists() or len(progress.read_text()) < LIVE_STEPS + 5:  # a whole run and a part of one
            assert writer.poll() is None, "the writer stopped"
            time.sleep(0.2)
        logged_before = len(progress.read_text())
        copies = set(Path(tempfile.gettempdir()).glob("mlflow-archive-snapshot-*"))
        summary = export_archive(str(tmp_path / "live.mlar"), tracking_uri=uri, workers=2)
        logged_after = len(progress.read_text())
    finally:
        writer.kill()
        writer.wait()
    assert summary.ok, summary.lines()
    assert logged_after > logged_before  # the writer went on during the export
    with open(tmp_path / "live.mlar", "rb") as stream:
        assert ArchiveReader(stream).header["source"]["snapshot"]["isolation"] == isolation
    assert f"snapshot:      {isolation}: every row as of one instant" in run_cli("inspect", tmp_path / "live.mlar").stdout_text
    assert set(Path(tempfile.gettempdir()).glob("mlflow-archive-snapshot-*")) == copies  # the export's copy is gone
    tables, _ = archive_contents(tmp_path / "live.mlar")
    problems, whole_runs = snapshot_consistency(tables)
    assert not problems, problems[:10]
    assert whole_runs >= 1


def test_sqlite_in_rollback_journal_mode_is_read_from_a_copy(tmp_path):
    """MLflow's default SQLite journal lets no writer commit while a reader holds a transaction: the export reads a
    copy, so a write made while it runs goes through at once (no busy wait) and stays out of the snapshot. The copy
    is unlinked once open. MLflow's stores are opened on the copy too, so the file gets no Default experiment."""
    import sqlite3

    from mlflow_archive.database_source import open_source

    db = tmp_path / "mlflow.db"
    # Another spelling of the path: MLflow caches a store per URI, and the export's must be opened afresh.
    MlflowClient(f"sqlite:///{tmp_path}/./mlflow.db").create_experiment("before the export")
    with sqlite3.connect(db) as conn:  # MLflow's store, opened on this file, would create it again
        conn.execute("DELETE FROM experiments WHERE experiment_id = 0")
    copies = set(Path(tempfile.gettempdir()).glob("mlflow-archive-snapshot-*"))
    source = open_source(f"sqlite:///{db}")
    try:
        # The copy is read unlinked: an export killed now would leave nothing in the temporary folder.
        assert set(Path(tempfile.gettempdir()).glob("mlflow-archive-snapshot-*")) == copies
        with sqlite3.connect(db, timeout=0) as conn:
            conn.execute("UPDATE experiments SET name = 'during the export' WHERE name = 'before the export'")
        names = {e.name for e in source.experiments(include_deleted=True)}
    finally:
        source.close()
    assert "before the export" in names and "during the export" not in names
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM experiments WHERE experiment_id = 0").fetchone() == (0,)


def test_databases_that_cannot_be_exported_as_they_are(tmp_path, postgres):
    """The export never creates or changes its source: no file where none was, no data, a schema of a newer
    MLflow, and an older schema on a server database (which only an in-place upgrade could read) are each one
    sentence; an older SQLite schema is read from an upgraded copy, the file left as it was."""
    import hashlib
    import sqlite3

    def refused(uri: str) -> str:
        result = export_cli(tmp_path / "x.mlar", uri, check=False)
        assert not (tmp_path / "x.mlar").exists()
        return result.error_line()

    missing = tmp_path / "typo" / "mlfow.db"
    assert "There is no database file at" in refused(f"sqlite:///{missing}") and not missing.parent.exists()
    (tmp_path / "empty.db").touch()
    assert "holds no MLflow tracking data" in refused(f"sqlite:///{tmp_path / 'empty.db'}")
    assert (tmp_path / "empty.db").stat().st_size == 0

    older = tmp_path / "older.db"
    database_at_revision(f"sqlite:///{older}", MID_HISTORY)
    with sqlite3.connect(older) as conn:
        conn.executemany(  # what every MLflow store holds, and one more
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage) VALUES (?, ?, ?, 'active')",
            [(0, "Default", str(tmp_path / "0")), (7, "kept", str(tmp_path / "7"))],
        )
    digest = hashlib.sha256(older.read_bytes()).hexdigest()
    result = export_cli(tmp_path / "older.mlar", f"sqlite:///{older}")
    assert f"the database has the schema of an older MLflow (revision {MID_HISTORY})" in result.stderr_text
    assert hashlib.sha256(older.read_bytes()).hexdigest() == digest
    assert sorted(e["name"] for e in archive_contents(tmp_path / "older.mlar")[0]["experiments"]) == ["Default", "kept"]

    newer = tmp_path / "newer.db"
    newer.write_bytes(older.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert "has schema revision ffffffffffff, which MLflow" in refused(f"sqlite:///{newer}")

    on_server = postgres("older")
    database_at_revision(on_server, MID_HISTORY)
    message = refused(on_server)
    assert f"has the schema of an older MLflow (revision {MID_HISTORY})" in message and "mlflow db upgrade" in message
    import sqlalchemy as sa
    from mlflow.store.db.utils import _get_schema_version

    engine = sa.create_engine(on_server)
    assert _get_schema_version(engine) == MID_HISTORY
    engine.dispose()
