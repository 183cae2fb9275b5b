"""Scorers (registered judges) travel both ways with every version, in their experiment, with their online scoring
configuration: over REST (new IDs, version numbers kept, a deleted version's gap included) and through the database
(IDs, numbers and times kept). Real servers."""

from __future__ import annotations

import json
import sqlite3

import pytest
from mlflow import MlflowClient
from mlflow.entities.gateway_endpoint import GatewayEndpointModelConfig, GatewayModelLinkageType
from mlflow.genai.judges import make_judge
from mlflow.genai.scorers import scorer
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

import archive_cli
from archive_tables import database_rows
from mlflow_archive.endpoints import serialized_scorer
from servers import start_server

ENDPOINT = "judge-endpoint"
FILTER = "attributes.status = 'OK'"
INSTRUCTIONS = "Is {{ outputs }} good? Ünïcödé 実験 v"


def _store(url: str):
    return MlflowClient(tracking_uri=url)._tracking_client.store


def _gateway_endpoint(url: str) -> None:
    """An AI gateway endpoint a judge can name as its model (the online scoring configs need one)."""
    store = _store(url)
    secret = store.create_gateway_secret("judge-key", {"api_key": "sk-not-a-key"}, provider="openai")
    model = store.create_gateway_model_definition("judge-model", secret.secret_id, "openai", "gpt-4o-mini")
    config = GatewayEndpointModelConfig(model.model_definition_id, GatewayModelLinkageType.PRIMARY)
    store.create_gateway_endpoint(ENDPOINT, [config], usage_tracking=False)


@scorer
def says_yes(outputs) -> bool:
    return str(outputs).strip().lower() == "yes"


def _register(url: str, experiment_id: str, name: str, version: int, model: str = "openai:/gpt-4o-mini") -> None:
    judge = make_judge(name=name, instructions=f"{INSTRUCTIONS}{version}", model=model, feedback_value_type=bool)
    with _use_tracking_uri(url):
        judge.register(experiment_id=experiment_id)


@pytest.fixture(scope="module")
def scorer_source(module_dest_server):
    """Two experiments with judges of two and three versions (version 2 of one deleted), one on a gateway endpoint with
    an online scoring configuration, a scorer written in code, and a deleted experiment with a judge."""
    url = module_dest_server.url
    client, store = MlflowClient(tracking_uri=url), _store(url)
    _gateway_endpoint(url)
    first, second, deleted = (client.create_experiment(n) for n in ("judged-a", "judged-b", "judged-deleted"))
    for version in (1, 2, 3):
        _register(url, first, "quality", version)
    store.delete_scorer(first, "quality", 2)
    _register(url, first, "tone", 1)
    with _use_tracking_uri(url):
        says_yes.register(experiment_id=first)
    for version in (1, 2):
        _register(url, second, "quality", version + 10)
        _register(url, second, "online", version, model=f"gateway:/{ENDPOINT}")
    store.upsert_online_scoring_config(second, "online", 0.25, FILTER)
    _register(url, deleted, "gone", 1)
    client.delete_experiment(deleted)
    return module_dest_server


def _scorers(url: str) -> dict:
    """``{(experiment name, scorer name): ({version: definition}, [(sample rate, filter)])}`` over REST, active
    experiments only."""
    store, found = _store(url), {}
    for experiment in MlflowClient(tracking_uri=url).search_experiments():
        for latest in store.list_scorers(experiment.experiment_id):
            versions = store.list_scorer_versions(experiment.experiment_id, latest.scorer_name)
            configs = store.get_online_scoring_configs([latest.scorer_id])
            found[(experiment.name, latest.scorer_name)] = (
                {v.scorer_version: json.loads(serialized_scorer(v)) for v in versions},
                [(c.sample_rate, c.filter_string) for c in configs],
            )
    return found


def _rows(database) -> dict[str, list[tuple]]:
    return database_rows(database, {
        "scorers": "SELECT scorer_id, experiment_id, scorer_name FROM scorers ORDER BY 1",
        "scorer_versions": "SELECT * FROM scorer_versions ORDER BY 1, 2",
        "online_scoring_configs": "SELECT * FROM online_scoring_configs ORDER BY 1",
    })


def test_rest_round_trip_keeps_versions_and_configs(scorer_source, fresh_dest_server, tmp_path):
    source, destination = scorer_source, fresh_dest_server
    archive = tmp_path / "scorers.mlar"
    # --allow-missing-kinds: the gateway endpoint the judge names does not travel yet.
    exported = archive_cli.export(archive, source.url, "--export-deleted-experiments", "--allow-missing-kinds")
    counts = archive_cli.export_counts(exported.stderr_text)
    assert (counts["scorers"], counts["scorer_versions"], counts["online_scoring_configs"]) == (5, 8, 1)
    assert "1 deleted experiment(s) were exported without their scorers" in exported.stderr_text

    _gateway_endpoint(destination.url)  # the destination's own endpoint of the same name
    imported = archive_cli.import_(archive, destination.url)
    counts = archive_cli.import_counts(imported.stderr_text)
    assert counts["scorers"] == (5, 0, 0) and counts["scorer_versions"] == (8, 0, 0), imported.describe()
    assert counts["online_scoring_configs"] == (1, 0, 0)
    expected = _scorers(source.url)
    assert _scorers(destination.url) == expected
    assert sorted(expected[("judged-a", "quality")][0]) == [1, 3]  # the deleted version's number stays unused
    assert expected[("judged-b", "online")][1] == [(0.25, FILTER)]

    again = archive_cli.import_counts(archive_cli.import_(archive, destination.url).stderr_text)
    assert (again["scorers"], again["scorer_versions"], again["online_scoring_configs"]) == ((0, 5, 0), (0, 8, 0), (0, 1, 0))
    assert _scorers(destination.url) == expected


def test_database_export_and_restore_keep_ids_numbers_and_times(scorer_source, fresh_dest_server, tmp_path):
    source = scorer_source
    archive = tmp_path / "database.mlar"
    exported = archive_cli.export(
        archive, f"sqlite:///{source.backend_path}", "--artifacts-destination", str(source.artifacts_path),
        "--export-deleted-experiments", "--allow-missing-kinds",
    )
    counts = archive_cli.export_counts(exported.stderr_text)
    assert (counts["scorers"], counts["scorer_versions"], counts["online_scoring_configs"]) == (6, 9, 1)

    root = tmp_path / "restored"
    restore = ("restore", "-i", str(archive), "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"))
    restored = archive_cli.run(*restore)
    assert "scorers: 6 created" in restored.stderr_text and "scorer_versions: 9 created" in restored.stderr_text
    # Every row as stored, the gateway judge's endpoint ID and the deleted experiment's scorer included.
    assert _rows(root / "mlflow.db") == _rows(source.backend_path)
    server = start_server(root)
    try:
        # The restored server has no gateway (it does not travel yet): its judge's endpoint is not resolved to a name.
        without_gateway = {k: v for k, v in _scorers(source.url).items() if k != ("judged-b", "online")}
        assert {k: v for k, v in _scorers(server.url).items() if k != ("judged-b", "online")} == without_gateway
    finally:
        server.stop()
    assert "scorers: 0 created, 6 already present" in archive_cli.run(*restore).stderr_text

    # Imported, the deleted experiment's scorer comes back with it; the gateway judge names the source's endpoint by
    # its ID, which no endpoint of the destination is named: MLflow refuses its versions, and they are counted.
    destination = fresh_dest_server
    _gateway_endpoint(destination.url)
    imported = archive_cli.import_(archive, destination.url, check=False)
    counts = archive_cli.import_counts(imported.stderr_text)
    assert (counts["scorers"], counts["scorer_versions"], counts["online_scoring_configs"]) == ((5, 0, 0), (7, 0, 2), (0, 0, 1))
    assert imported.returncode == 1
    with sqlite3.connect(destination.backend_path) as conn:
        assert conn.execute(
            "SELECT e.lifecycle_stage, s.scorer_name FROM scorers s JOIN experiments e USING (experiment_id) "
            "WHERE e.name = 'judged-deleted'"
        ).fetchall() == [("deleted", "gone")]


def test_scorers_follow_the_selected_experiments(scorer_source, tmp_path):
    selected = archive_cli.export(tmp_path / "b.mlar", scorer_source.url, "--experiments", "judged-b")
    assert archive_cli.export_counts(selected.stderr_text)["scorer_versions"] == 4
    left_out = archive_cli.export(tmp_path / "none.mlar", scorer_source.url, "--no-scorers", "--allow-missing-kinds")
    assert "scorers" not in archive_cli.export_counts(left_out.stderr_text)
