"""Issues travel both ways in their experiment, with their category index: over REST (IDs kept, source run
re-pointed) and through the database (every stored value kept, a never-set last-seen time included). Real servers."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import archive_cli
from archive_tables import database_rows
from servers import start_server

COMPARED = ("issue_id", "name", "description", "status", "severity", "root_causes", "categories", "created_by",
            "last_seen_timestamp", "metadata")


def _store(url: str):
    return MlflowClient(tracking_uri=url)._tracking_client.store


@pytest.fixture(scope="module")
def issue_source(module_dest_server):
    """Two experiments with issues: one found by a run, with root causes, categories (two spellings of one) and
    metadata; a bare one; one with a last-seen time."""
    url = module_dest_server.url
    client, store = MlflowClient(tracking_uri=url), _store(url)
    first, second = (client.create_experiment(n) for n in ("issues-a", "issues-b"))
    run = client.create_run(first).info.run_id
    store.create_issue(first, "slow answers", "Ünïcödé 実験", "pending", "high", ["cold cache", "big prompt"], run,
                       ["latency", "Cache", " cache "], "alice", metadata={"ticket": "T-1", "a": "b"})
    store.create_issue(first, "bare", "no details", "resolved")
    store.create_issue(second, "seen", "later", "pending", last_seen_timestamp=4_000_000_000_000)
    gone = client.create_experiment("issues-gone")
    store.create_issue(gone, "of a deleted experiment", "kept", "pending")
    client.delete_experiment(gone)
    return module_dest_server


def _issues(url: str) -> dict:
    """``{(experiment name, issue name): (fields, source run name)}`` over REST."""
    client, store, found = MlflowClient(tracking_uri=url), _store(url), {}
    for experiment in client.search_experiments():
        for issue in store.search_issues(experiment_id=experiment.experiment_id, max_results=1000):
            run = issue.source_run_id and client.get_run(issue.source_run_id).info.run_name
            found[(experiment.name, issue.name)] = ({c: getattr(issue, c) for c in COMPARED}, run)
    return found


def _rows(database) -> dict[str, list[tuple]]:
    return database_rows(database, {
        "issues": "SELECT * FROM issues ORDER BY 1",
        "issue_categories": "SELECT * FROM issue_categories ORDER BY 1, 2",
    })


def test_rest_round_trip_keeps_ids_and_values(issue_source, fresh_dest_server, tmp_path):
    source, destination = issue_source, fresh_dest_server
    archive = tmp_path / "issues.mlar"
    counts = archive_cli.export_counts(archive_cli.export(archive, source.url).stderr_text)
    assert (counts["issues"], counts["issue_categories"]) == (3, 2)

    imported = archive_cli.import_(archive, destination.url)
    counts = archive_cli.import_counts(imported.stderr_text)
    assert counts["issues"] == (3, 0, 0) and counts["issue_categories"] == (2, 0, 0), imported.describe()
    expected = _issues(source.url)
    assert _issues(destination.url) == expected
    assert expected[("issues-a", "slow answers")][1] is not None  # the source run, re-pointed

    again = archive_cli.import_counts(archive_cli.import_(archive, destination.url).stderr_text)
    assert (again["issues"], again["issue_categories"]) == ((0, 3, 0), (0, 2, 0))
    assert _issues(destination.url) == expected


def test_database_export_and_restore_keep_every_value(issue_source, fresh_dest_server, tmp_path):
    source = issue_source
    archive = tmp_path / "database.mlar"
    exported = archive_cli.export(archive, f"sqlite:///{source.backend_path}", "--artifacts-destination",
                                  str(source.artifacts_path), "--allow-missing-kinds", "--export-deleted-experiments")
    counts = archive_cli.export_counts(exported.stderr_text)
    assert (counts["issues"], counts["issue_categories"]) == (4, 2)  # the deleted experiment's issue too

    root = tmp_path / "restored"
    restored = archive_cli.run("restore", "-i", str(archive), "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--artifacts-destination", str(root / "artifacts"))
    assert "issues: 4 created" in restored.stderr_text and "issue_categories: 2 created" in restored.stderr_text
    assert _rows(root / "mlflow.db") == _rows(source.backend_path)
    server = start_server(root)
    try:
        assert _issues(server.url) == _issues(source.url)
    finally:
        server.stop()
    # Imported: the deleted experiment's issue comes back with its experiment, which is deleted again.
    imported = archive_cli.import_counts(archive_cli.import_(archive, fresh_dest_server.url).stderr_text)
    assert imported["issues"] == (4, 0, 0)
    assert _issues(fresh_dest_server.url) == _issues(source.url)
