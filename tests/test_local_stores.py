"""Local SQLite stores as source and destination, named by --tracking-uri or by MLFLOW_TRACKING_URI.

MLflow's SQL registry resolves ``models:/`` version sources through the process-wide tracking
URI; an import must behave the same whichever way the destination is named, and write nothing
outside it (no stray ``./mlflow.db``).
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

import archive_cli
from tags import SOURCE_MODEL_ID_TAG

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
