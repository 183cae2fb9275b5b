"""An import leaves alone what it did not make: a destination's own experiment, alias or run that the archive would
delete, move or overwrite stays as it is, one `note:` line names it, and the exit code is 0 (non-zero with --strict).
Restore likewise writes no run into an experiment of the destination's own that the archive names without holding.
"""

from __future__ import annotations

from mlflow import MlflowClient

import archive_cli
from tags import SOURCE_MODEL_NAME_TAG, SOURCE_RUN_TAG
from test_restore_hostile import RUN, write_archive


def _import_twice(archive, dest_uri: str, *names: str) -> None:
    """The import succeeds with a note naming each of ``names``; with --strict the same import fails."""
    result = archive_cli.import_(archive, dest_uri)
    notes = [line for line in result.stderr_text.splitlines() if line.startswith("note: ")]
    for name in names:
        assert any(name in line for line in notes), result.describe()
    strict = archive_cli.import_(archive, dest_uri, "--strict", check=False)
    assert strict.returncode != 0, strict.describe()
    assert "--strict: this fails the import" in strict.stderr_text, strict.describe()


def test_users_experiment_is_not_deleted(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}exp-a"
    source = MlflowClient(tracking_uri=scratch_server.url)
    source_id = source.create_experiment(name)
    source.create_run(source_id)
    source.delete_experiment(source_id)
    archive = tmp_path / "deleted.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", source_id, "--export-deleted-experiments")

    dest = MlflowClient(tracking_uri=dest_server.url)
    users_id = dest.create_experiment(name)
    users_run = dest.create_run(users_id).info.run_id
    _import_twice(archive, dest_server.url, f"experiment {name!r}")
    assert dest.get_experiment(users_id).lifecycle_stage == "active"
    assert dest.get_run(users_run).info.lifecycle_stage == "active"


def test_users_alias_is_not_moved(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}model"

    def model_with_champion(uri: str) -> None:
        client = MlflowClient(tracking_uri=uri)
        run = client.create_run(client.create_experiment(f"{unique_prefix}{uri[-5:]}")).info.run_id
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run}/model", run)
        client.set_registered_model_alias(name, "champion", "1")

    model_with_champion(scratch_server.url)
    archive = tmp_path / "model.mlar"
    archive_cli.export(archive, scratch_server.url, "--models", name)

    model_with_champion(dest_server.url)
    _import_twice(archive, dest_server.url, f"alias 'champion' of {name!r}")
    dest = MlflowClient(tracking_uri=dest_server.url)
    assert len(dest.search_model_versions(f"name = '{name}'")) == 2  # the imported version is there, as version 2
    assert dest.get_registered_model(name).aliases == {"champion": "1"}
    assert SOURCE_MODEL_NAME_TAG not in dest.get_registered_model(name).tags  # still the user's, for later imports


def test_restored_run_is_not_deleted_again(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}runs"
    source = MlflowClient(tracking_uri=scratch_server.url)
    source_id = source.create_experiment(name)
    deleted = source.create_run(source_id).info.run_id
    source.delete_run(deleted)
    archive = tmp_path / "run.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", source_id, "--export-deleted-runs")
    archive_cli.import_(archive, dest_server.url)

    dest = MlflowClient(tracking_uri=dest_server.url)
    experiment_id = dest.get_experiment_by_name(name).experiment_id
    [imported] = dest.search_runs([experiment_id], f"tags.`{SOURCE_RUN_TAG}` = '{deleted}'", run_view_type=3)
    assert imported.info.lifecycle_stage == "deleted"
    dest.restore_run(imported.info.run_id)  # the user wants it back
    _import_twice(archive, dest_server.url, f"run {imported.info.run_id}")
    assert dest.get_run(imported.info.run_id).info.lifecycle_stage == "active"


def test_restore_writes_no_run_into_users_experiment(tmp_path):
    db = tmp_path / "mlflow.db"
    dest = MlflowClient(tracking_uri=f"sqlite:///{db}")
    users_id = dest.create_experiment("mine", artifact_location=str(tmp_path / "mine"))
    users_run = dest.create_run(users_id).info.run_id
    archive = write_archive(tmp_path / "runs-only.mlar", {"runs": [{**RUN, "experiment_id": users_id}]})

    def restore(*options: str):
        return archive_cli.run("restore", "-i", archive, "--tracking-uri", f"sqlite:///{db}",
                               "--artifacts-destination", tmp_path / "artifacts", "--quiet", *options, check=False)

    result = restore()
    assert result.returncode == 0, result.describe()
    assert f"note: experiment {users_id} ('mine')" in result.stderr_text, result.describe()
    strict = restore("--strict")
    assert strict.returncode != 0, strict.describe()
    assert [r.info.run_id for r in dest.search_runs([users_id])] == [users_run]
