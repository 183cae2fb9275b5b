"""Label schemas travel both ways in their experiment: over REST (listed only where review queues are, since a list
writes MLflow's default schema; the default mapped, never created) and through the database (every experiment's, as
stored, IDs and times kept). Real servers."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.genai.label_schemas.label_schemas import InputCategorical, InputNumeric, InputPassFail

import archive_cli
from archive_tables import database_rows
from servers import start_server

COMPARED = ("name", "type", "input", "instruction", "enable_comment", "is_default")


def _store(url: str):
    return MlflowClient(tracking_uri=url)._tracking_client.store


@pytest.fixture(scope="module")
def schema_source(module_dest_server):
    """An experiment with a review queue and three schemas (categorical, pass/fail, numeric), and one without a queue
    with a schema of its own."""
    url = module_dest_server.url
    client, store = MlflowClient(tracking_uri=url), _store(url)
    queued, plain = client.create_experiment("labelled-queued"), client.create_experiment("labelled-plain")
    store.create_label_schema(queued, name="Tone ✓", type="feedback", input=InputCategorical(["calm", "rude"], True),
                              instruction="Ünïcödé 実験", enable_comment=True)
    store.create_label_schema(queued, name="correct", type="expectation", input=InputPassFail("yes", "no"))
    store.create_label_schema(queued, name="score", type="feedback", input=InputNumeric(0, 10))
    asked = [s.schema_id for s in store.list_label_schemas(queued) if s.name != "score"]  # the default's too
    store.create_review_queue(queued, name="triage", queue_type="custom", users=["alice"], schema_ids=asked)
    store.create_label_schema(plain, name="only-here", type="feedback", input=InputPassFail("ok", "bad"))
    return module_dest_server, queued, plain


def _schemas(url: str, experiment_name: str) -> dict:
    """``{schema name: fields}`` of one experiment, over REST (which writes the default schema if missing)."""
    client, store = MlflowClient(tracking_uri=url), _store(url)
    experiment = client.get_experiment_by_name(experiment_name).experiment_id
    return {s.name: {c: getattr(s, c) for c in COMPARED} for s in store.list_label_schemas(experiment, max_results=1000)}


def _rows(database) -> dict[str, list[tuple]]:
    return database_rows(database, {"label_schemas": "SELECT * FROM label_schemas ORDER BY 1"})


def test_rest_round_trip_lists_only_where_queues_are(schema_source, fresh_dest_server, tmp_path):
    (source, _, plain), destination = schema_source, fresh_dest_server
    before = _rows(source.backend_path)
    archive = tmp_path / "schemas.mlar"
    exported = archive_cli.export(archive, source.url, "--allow-missing-kinds")  # review queues do not travel yet
    # The queue's three (its default included); "score", which no queue asks, and the plain experiment's are not read.
    assert archive_cli.export_counts(exported.stderr_text)["label_schemas"] == 3
    assert "only those that review queues ask were read" in exported.stderr_text
    assert _rows(source.backend_path) == before  # the export wrote no default schema

    imported = archive_cli.import_(archive, destination.url)
    assert archive_cli.import_counts(imported.stderr_text)["label_schemas"] == (2, 1, 0), imported.describe()
    expected = _schemas(source.url, "labelled-queued")
    del expected["score"]
    assert _schemas(destination.url, "labelled-queued") == expected
    defaults = database_rows(destination.backend_path, {"d": "SELECT count(*) FROM label_schemas WHERE is_default"})
    assert defaults["d"] == [(1,)]  # the destination's own default stands for the source's

    again = archive_cli.import_counts(archive_cli.import_(archive, destination.url).stderr_text)
    assert again["label_schemas"] == (0, 3, 0)


def test_database_export_and_restore_keep_ids_and_times(schema_source, fresh_dest_server, tmp_path):
    source = schema_source[0]
    archive = tmp_path / "database.mlar"
    exported = archive_cli.export(archive, f"sqlite:///{source.backend_path}", "--artifacts-destination",
                                  str(source.artifacts_path), "--allow-missing-kinds")
    stored = _rows(source.backend_path)["label_schemas"]
    assert archive_cli.export_counts(exported.stderr_text)["label_schemas"] == len(stored)

    root = tmp_path / "restored"
    restored = archive_cli.run("restore", "-i", str(archive), "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--artifacts-destination", str(root / "artifacts"))
    assert f"label_schemas: {len(stored)} created" in restored.stderr_text
    assert _rows(root / "mlflow.db") == _rows(source.backend_path)
    server = start_server(root)
    try:
        for name in ("labelled-queued", "labelled-plain"):
            assert _schemas(server.url, name) == _schemas(source.url, name)
    finally:
        server.stop()
    # Imported: every schema but the default, which the destination's own stands for.
    imported = archive_cli.import_counts(archive_cli.import_(archive, fresh_dest_server.url).stderr_text)
    assert imported["label_schemas"] == (len(stored) - 1, 1, 0)
    for name in ("labelled-queued", "labelled-plain"):
        assert _schemas(fresh_dest_server.url, name) == _schemas(source.url, name)
