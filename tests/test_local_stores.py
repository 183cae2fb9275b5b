"""Local SQLite stores as source and destination, named by --tracking-uri or by MLFLOW_TRACKING_URI.

MLflow's SQL registry resolves ``models:/`` version sources through the process-wide tracking
URI; an import must behave the same whichever way the destination is named, and write nothing
outside it (no stray ``./mlflow.db``).
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

import archive_cli
from compare import as_sql_stores_it, compare_servers
from tags import SOURCE_MODEL_ID_TAG
from tracking_data import build_small_experiment

ODD = [1.5, float("nan"), float("inf"), float("-inf"), -0.0]

MODEL = "local-store-model"


@pytest.fixture(scope="module")
def registry_archive(tmp_path_factory):
    """An archive of a SQLite store holding a registered model whose version comes from a logged model."""
    root = tmp_path_factory.mktemp("local-source")
    uri = f"sqlite:///{root / 'src.db'}"
    client = MlflowClient(tracking_uri=uri)
    with _use_tracking_uri(uri):  # creating such a version needs it on the source side too
        experiment_id = client.create_experiment("local-store", artifact_location=str(root / "artifacts"))
        run = client.create_run(experiment_id)
        model = client.create_logged_model(experiment_id, name="net", source_run_id=run.info.run_id)
        client.finalize_logged_model(model.model_id, "READY")
        client.set_terminated(run.info.run_id)
        client.create_registered_model(MODEL)
        client.create_model_version(MODEL, f"models:/{model.model_id}", run_id=run.info.run_id, model_id=model.model_id)
    archive = root / "registry.mlar"
    archive_cli.export(archive, uri)
    return archive


@pytest.mark.parametrize("named_by", ["option", "environment"])
def test_model_versions_import_into_sqlite(registry_archive, tmp_path, named_by):
    dest = f"sqlite:///{tmp_path / 'dst.db'}"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    if named_by == "option":
        result = archive_cli.run("import", "-i", registry_archive, "--tracking-uri", dest, "--quiet", cwd=workdir)
    else:
        result = archive_cli.run("import", "-i", registry_archive, "--quiet", tracking_uri=dest, cwd=workdir)

    counts = archive_cli.import_counts(result.stderr_text)
    assert counts.get("model_versions") == (1, 0, 0), result.describe()
    versions = MlflowClient(tracking_uri=dest).search_model_versions(f"name='{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert versions[0].source.startswith("models:/m-"), versions[0].source
    imported_model = MlflowClient(tracking_uri=dest).get_logged_model(versions[0].source.removeprefix("models:/"))
    assert imported_model.name == "net" and imported_model.tags.get(SOURCE_MODEL_ID_TAG)
    assert list(workdir.iterdir()) == [], "the import wrote outside its destination"


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory):
    return archive_cli.demo_archive(tmp_path_factory.mktemp("demo-source"))


def _artifact_files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_artifacts_destination_of_a_database(demo_archive, tmp_path):
    workdir, artifacts = tmp_path / "cwd", tmp_path / "artifacts"
    workdir.mkdir()
    dest = f"sqlite:///{tmp_path / 'dst.db'}"
    result = archive_cli.run("import", demo_archive, "--tracking-uri", dest, "--artifacts-destination", artifacts, cwd=workdir)

    assert f"go under {artifacts.as_uri()}" in result.stderr_text or f"go under {artifacts}" in result.stderr_text, result.describe()
    assert _artifact_files(artifacts) == ["notes.txt"] * 3
    assert list(workdir.iterdir()) == [], "artifacts landed in the working folder"
    client = MlflowClient(tracking_uri=dest)
    experiment = client.get_experiment_by_name("mlflow-archive-demo")
    run = client.search_runs([experiment.experiment_id])[0]
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["notes.txt"]


def test_default_artifact_root_of_a_database_is_said(demo_archive, tmp_path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    dest = f"sqlite:///{tmp_path / 'dst.db'}"
    result = archive_cli.run("import", demo_archive, "--tracking-uri", dest, cwd=workdir)
    assert "artifacts of the experiments this import created go under" in result.stderr_text, result.describe()
    assert "mlruns" in result.stderr_text
    again = archive_cli.run("import", demo_archive, "--tracking-uri", dest, cwd=workdir)
    assert "go under" not in again.stderr_text, again.describe()  # it created none


def test_artifacts_destination_is_refused_for_a_server(demo_archive, tmp_path):
    result = archive_cli.import_(demo_archive, "http://127.0.0.1:9", "--artifacts-destination", tmp_path, check=False)
    assert result.returncode != 0 and "is for a database or file-store destination" in result.stderr_text, result.describe()


def test_unreadable_files_of_one_run_leave_the_rest_exported(tmp_path):
    """A run whose artifact location this machine cannot read (here a scheme MLflow has no repository for, as a
    dbfs:/ or a deleted bucket would be elsewhere) is exported without its files and counted as failed; the
    other runs keep theirs, and the archive is whole."""
    uri = f"sqlite:///{tmp_path / 'src.db'}"
    client = MlflowClient(tracking_uri=uri)
    readable = client.create_experiment("readable", artifact_location=str(tmp_path / "artifacts"))
    unreadable = client.create_experiment("unreadable", artifact_location="nowhere://gone-bucket/mlflow")
    kept = client.create_run(readable).info.run_id
    client.log_text(kept, "kept", "notes/kept.txt")
    lost = client.create_run(unreadable).info.run_id
    client.log_param(lost, "still", "exported")

    archive = tmp_path / "partial.mlar"
    result = archive_cli.export(archive, uri, check=False)
    assert result.returncode == 1, result.describe()
    failures = [line for line in result.stderr_text.splitlines() if line.startswith("artifact_files: ")]
    assert len(failures) == 1, result.describe()
    assert failures[0].startswith(f"artifact_files: 1 exported, 1 failed (first error: the files of runs/{lost} were left out: ")
    assert "nowhere://" in failures[0], failures[0]
    assert archive_cli.export_counts(result.stderr_text)["runs"] == 2
    archive_cli.run("verify", archive)

    dest = f"sqlite:///{tmp_path / 'dst.db'}"
    archive_cli.import_(archive, dest, "--artifacts-destination", tmp_path / "dest-artifacts")
    dest_client = MlflowClient(tracking_uri=dest)
    runs = {r.data.params.get("still", "kept"): r for r in dest_client.search_runs(
        [e.experiment_id for e in dest_client.search_experiments() if e.name in ("readable", "unreadable")])}
    assert sorted(runs) == ["exported", "kept"]
    assert [f.path for f in dest_client.list_artifacts(runs["kept"].info.run_id, "notes")] == ["notes/kept.txt"]


def test_archive_imported_into_its_own_store_creates_only_what_is_missing(tmp_path):
    """Run and logged-model IDs are UUIDs, and a registered model or an experiment is the same one when its name
    and creation time (and an experiment's ID) match: an archive imported back into the store it came from finds
    its objects there, writes nothing to them (an experiment restored since the export stays active), and creates
    only a run removed since the export."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp_path / 'own.db'}"
    client = MlflowClient(tracking_uri=uri)
    with _use_tracking_uri(uri):
        experiment_id = client.create_experiment("own", artifact_location=str(tmp_path / "artifacts"))
        parent = client.create_run(experiment_id, run_name="parent").info.run_id
        client.log_text(parent, "weights", "model/MLmodel")
        child = client.create_run(experiment_id, run_name="child", tags={"mlflow.parentRunId": parent}).info.run_id
        lost = client.create_run(experiment_id, run_name="lost").info.run_id
        client.log_batch(lost, params=[Param("kept", "yes")])
        for run_id in (parent, child, lost):
            client.set_terminated(run_id)
        model = client.create_logged_model(experiment_id, name="net", source_run_id=parent)
        client.create_registered_model("own-model")
        for _ in range(2):
            client.create_model_version("own-model", f"runs:/{parent}/model", run_id=parent)
        back_id = client.create_experiment("own-back", tags={"kept": "as is"})
        client.delete_experiment(back_id)
    before = {r.info.run_id: r.data.tags for r in client.search_runs([experiment_id])}
    experiment_tags = {e: client.get_experiment(e).tags for e in (experiment_id, back_id)}
    archive = tmp_path / "own.mlar"
    archive_cli.export(archive, uri, "--export-deleted-experiments")
    client.restore_experiment(back_id)  # restored since the export: the import leaves it active
    client.delete_run(lost)
    SqlAlchemyStore(uri, str(tmp_path / "artifacts"))._hard_delete_run(lost)  # as `mlflow gc` would

    result = archive_cli.import_(archive, uri)
    counts = archive_cli.import_counts(result.stderr_text)
    assert counts["runs"] == (1, 2, 0), result.describe()
    assert counts["logged_models"] == (0, 1, 0) and counts["registered_models"] == (0, 1, 0), result.describe()
    assert counts["model_versions"] == (0, 2, 0), result.describe()
    runs = {r.info.run_id: r for r in client.search_runs([experiment_id])}
    assert {parent, child} < set(runs) and len(runs) == 3
    assert {run_id: runs[run_id].data.tags for run_id in (parent, child)} == {k: before[k] for k in (parent, child)}
    (recovered,) = [r for r in runs.values() if r.info.run_id not in before]
    assert recovered.info.run_name == "lost" and recovered.data.params == {"kept": "yes"}
    assert [m.model_id for m in client.search_logged_models([experiment_id])] == [model.model_id]
    assert sorted(int(v.version) for v in client.search_model_versions("name='own-model'")) == [1, 2]
    assert client.get_registered_model("own-model").tags == {}
    assert {e: client.get_experiment(e).tags for e in (experiment_id, back_id)} == experiment_tags  # no tag written
    assert client.get_experiment(back_id).lifecycle_stage == "active"

    again = archive_cli.import_counts(archive_cli.import_(archive, uri).stderr_text)
    assert again["runs"] == (0, 3, 0) and again["model_versions"] == (0, 2, 0)


def test_file_store_moves_into_a_database(tmp_path, monkeypatch):
    """An ``mlruns/`` folder (MLflow's FileStore, opened with MLFLOW_ALLOW_FILE_STORE=true) into SQLite: by import,
    compared field by field (run times, NaN and ±inf points, nested runs, deleted runs, files), and by restore,
    with experiment IDs (FileStore's 18-digit ones), run IDs and creation times kept."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    source = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=source)
    small = build_small_experiment(source, "from-mlruns", tags={"note": "naïve ✓"})
    parent = client.get_run(small.run_ids[0])
    child = client.create_run(small.experiment_id, run_name="child", tags={"mlflow.parentRunId": parent.info.run_id})
    client.log_batch(child.info.run_id, metrics=[Metric("odd", v, 1_700_000_000_000 + i, i) for i, v in enumerate(ODD)])
    client.set_terminated(child.info.run_id)
    client.delete_run(small.run_ids[1])
    client.create_registered_model("from-mlruns-model", tags={"k": "v"})
    client.create_model_version("from-mlruns-model", f"runs:/{parent.info.run_id}/out", run_id=parent.info.run_id)
    archive = tmp_path / "mlruns.mlar"
    archive_cli.export(archive, source, "--export-deleted-runs")

    imported = f"sqlite:///{tmp_path / 'imported.db'}"
    archive_cli.import_(archive, imported, "--artifacts-destination", str(tmp_path / "imported-artifacts"))
    comparison = compare_servers(source, imported, experiment_names=["from-mlruns"], sql_destination_of_other_store=True)
    assert comparison.compared_runs == 3
    # The archive holds the points as the FileStore had them; the SQL store keeps them its own way.
    points = MlflowClient(tracking_uri=imported).get_metric_history(comparison.run_map[child.info.run_id], "odd")
    assert [repr(p.value) for p in sorted(points, key=lambda p: p.step)] == [repr(as_sql_stores_it(v)) for v in ODD]
    assert [repr(p.value) for p in client.get_metric_history(child.info.run_id, "odd")] == [repr(v) for v in ODD]
    version = MlflowClient(tracking_uri=imported).get_model_version("from-mlruns-model", "1")
    assert version.run_id == comparison.run_map[parent.info.run_id]

    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    archive_cli.run("restore", "-i", archive, "--tracking-uri", restored, "--artifacts-destination", str(tmp_path / "restored-artifacts"), "--quiet")
    copy = MlflowClient(tracking_uri=restored)
    experiment = client.get_experiment(small.experiment_id)
    assert len(experiment.experiment_id) >= 15  # not a small integer: IDs of this size survive the SQL column
    restored_experiment = copy.get_experiment(small.experiment_id)
    assert (restored_experiment.name, restored_experiment.creation_time, restored_experiment.tags) == (
        experiment.name, experiment.creation_time, experiment.tags
    )
    for run_id in small.run_ids + [child.info.run_id]:
        got, expected = copy.get_run(run_id), client.get_run(run_id)
        assert (got.info.start_time, got.info.end_time, got.info.lifecycle_stage, got.data.params, got.data.tags) == (
            expected.info.start_time, expected.info.end_time, expected.info.lifecycle_stage, expected.data.params, expected.data.tags
        )
    registered = copy.get_registered_model("from-mlruns-model")
    assert registered.creation_timestamp == client.get_registered_model("from-mlruns-model").creation_timestamp
