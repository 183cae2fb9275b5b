"""``restore`` of logged models, traces, prompts and evaluation datasets: IDs and times kept, field by field.

Each kind is built on ``scratch_server`` under ``unique_prefix`` names, exported over REST, restored into a
fresh SQLite file, and compared through MLflow's own SQL store on both databases; a second restore writes nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from archive_cli import export as export_cli
from archive_cli import import_counts
from archive_cli import run as run_cli
from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient
from models_data import client_for
from prompts_data import build_prompts_dataset, compare_prompt, prompt_versions
from restore_data import database_rows
from restore_kinds_data import (
    build_dataset,
    build_logged_models,
    dataset_fields,
    differences,
    files_under,
    logged_model_fields,
    stored_traces,
    write_trace_archive,
    run_model_links,
)
from traces_data import build_traces, compare_trace


def restore(archive, root, check: bool = True):
    proc = run_cli("restore", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--artifacts-destination", root / "artifacts", "--quiet", check=check)
    return import_counts(proc.stderr_text), proc.stderr_text


def execute(root, statement: str, **params) -> None:
    """A change made behind MLflow's back, as a killed restore or another writer leaves the database."""
    engine = sa.create_engine(f"sqlite:///{root / 'mlflow.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def restored_client(root) -> MlflowClient:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def test_logged_models_and_their_versions(scratch_server, unique_prefix, tmp_path):
    data = build_logged_models(scratch_server.url, unique_prefix, tmp_path)
    archive, root = tmp_path / "models.mlar", tmp_path / "restored"
    export_cli(archive, scratch_server.url, "--experiments", data.experiment, "--models", data.registered_model,
               "--export-version-model")
    counts, _ = restore(archive, root)
    assert counts["logged_models"] == (2, 0, 0)
    assert counts["model_versions"] == (2, 0, 0)

    source, restored = MlflowClient(scratch_server.backend_uri, registry_uri=scratch_server.backend_uri), restored_client(root)
    diffs = []
    for model_id in data.model_ids:
        expected, got = logged_model_fields(source, model_id), logged_model_fields(restored, model_id)
        diffs += differences(expected, got, f"logged model {model_id}")
        relative = expected["artifact_location"].removeprefix("mlflow-artifacts:/")
        assert files_under(root / "artifacts" / relative) == files_under(scratch_server.artifacts_path / relative)
    # Model outputs only: MLflow's search_runs leaves out runs' model inputs, so the export has none to carry.
    assert [run_model_links(restored, r)[1] for r in data.run_ids] == [run_model_links(source, r)[1] for r in data.run_ids]
    assert run_model_links(restored, data.run_ids[0])[1] == [(data.model_ids[0], 4)]

    def versions(client):
        return {v.version: {**dict(v), "download": client.get_model_version_download_uri(v.name, v.version)}
                for v in client.search_model_versions(f"name = '{data.registered_model}'")}

    expected, got = versions(source), versions(restored)
    assert sorted(got) == sorted(expected) == [1, 2]
    # Version 1 is made from a logged model: everything kept, its files read from the model's location.
    diffs += differences(expected[1], got[1], "version 1")
    # Version 2's source is a run the archive does not hold: kept, with downloads reading the carried files.
    carried = got[2].pop("download")
    diffs += differences({k: v for k, v in expected[2].items() if k != "download"}, got[2], "version 2")
    assert carried.startswith("mlflow-artifacts:/model-versions/") and carried != expected[2]["download"]
    assert files_under(root / "artifacts" / carried.removeprefix("mlflow-artifacts:/")) == {"model.pkl": b"outside model"}
    assert restored.get_registered_model(data.registered_model).aliases == source.get_registered_model(data.registered_model).aliases
    assert not diffs, "\n".join(diffs)

    before = database_rows(f"sqlite:///{root / 'mlflow.db'}")
    again, _ = restore(archive, root)
    assert again["logged_models"] == (0, 2, 0) and again["model_versions"][0] == 0
    assert database_rows(f"sqlite:///{root / 'mlflow.db'}") == before

    # A logged model ID the destination holds with other content stops the restore before it writes anything.
    execute(root, "UPDATE logged_models SET name = 'renamed elsewhere' WHERE model_id = :m", m=data.model_ids[1])
    execute(root, "DELETE FROM registered_models")
    changed = database_rows(f"sqlite:///{root / 'mlflow.db'}")
    _, error = restore(archive, root, check=False)
    assert error.startswith("Error: ") and error.strip().count("\n") == 0, error
    assert f"logged model {data.model_ids[1]}" in error and "renamed elsewhere" in error
    assert database_rows(f"sqlite:///{root / 'mlflow.db'}") == changed  # the registered model was not written again


def test_traces(scratch_server, unique_prefix, tmp_path, postgres):
    """Trace infos, spans (from the span table, and a traces.json artifact), assessments with overrides, run links;
    into PostgreSQL the same rows as into SQLite."""
    name = f"{unique_prefix}traces"
    ids = build_traces(scratch_server.url, name)
    experiment_id = MlflowClient(scratch_server.url).get_experiment_by_name(name).experiment_id
    archive, root = tmp_path / "traces.mlar", tmp_path / "restored"
    export_cli(archive, scratch_server.url, "--experiments", name)
    counts, _ = restore(archive, root)
    assert counts["traces"] == (len(ids), 0, 0)

    source = stored_traces(scratch_server.backend_path, scratch_server.artifacts_path, experiment_id)
    restored = stored_traces(root / "mlflow.db", root / "artifacts", experiment_id)
    assert sorted(restored) == sorted(source)
    same = {run.info.run_id: run.info.run_id for run in MlflowClient(scratch_server.url).search_runs([experiment_id])}
    models = {m.model_id: m.model_id for m in MlflowClient(scratch_server.url).search_logged_models([experiment_id])}
    diffs = [d for trace_id in source for d in compare_trace(source[trace_id], restored[trace_id], same, models, imported=False)]
    assert not diffs, "\n".join(diffs)
    overridden = [a for a in restored[ids["pipeline"]].info.assessments if a.name == "quality"]
    assert sorted(a.valid for a in overridden) == [False, True] and sum(1 for a in overridden if a.overrides) == 1
    linked = TracingClient(f"sqlite:///{root / 'mlflow.db'}").search_traces(
        locations=[experiment_id], run_id=next(iter(same)), include_spans=False)
    source_linked = TracingClient(scratch_server.url).search_traces(locations=[experiment_id], run_id=next(iter(same)),
                                                                    include_spans=False)
    assert sorted(t.info.trace_id for t in linked) == sorted(t.info.trace_id for t in source_linked)

    before = database_rows(f"sqlite:///{root / 'mlflow.db'}")
    again, _ = restore(archive, root)
    assert again["traces"] == (0, len(ids), 0)
    assert database_rows(f"sqlite:///{root / 'mlflow.db'}") == before

    # A restore killed inside a trace leaves it tagged partial, half written: the next one writes it whole again.
    execute(root, "INSERT INTO trace_tags (request_id, key, value) VALUES (:t, 'mlflow_archive.import_state', 'partial')",
            t=ids["pipeline"])
    execute(root, "DELETE FROM assessments WHERE trace_id = :t", t=ids["pipeline"])
    execute(root, "DELETE FROM spans WHERE trace_id = :t", t=ids["pipeline"])
    resumed, _ = restore(archive, root)
    assert resumed["traces"] == (1, len(ids) - 1, 0)
    assert database_rows(f"sqlite:///{root / 'mlflow.db'}") == before

    uri = postgres("kinds_traces")
    run_cli("restore", "-i", archive, "--tracking-uri", uri, "--artifacts-destination", tmp_path / "pg", "--quiet")
    assert database_rows(uri, setup_default=False) == database_rows(f"sqlite:///{root / 'mlflow.db'}", setup_default=False)
    assert files_under(tmp_path / "pg") == files_under(root / "artifacts")


def test_prompts(scratch_server, unique_prefix, tmp_path):
    """Prompts: templates (text and chat), response formats, model configurations, deleted-version gaps, aliases, tags."""
    data = build_prompts_dataset(scratch_server.url, unique_prefix)
    archive, root = tmp_path / "prompts.mlar", tmp_path / "restored"
    export_cli(archive, scratch_server.url, "--experiments", data.experiment, "--prompts", ",".join(data.names))
    counts, _ = restore(archive, root)
    assert counts["prompts"] == (2, 0, 0) and counts["prompt_versions"] == (5, 0, 0)

    source, restored = scratch_server.backend_uri, f"sqlite:///{root / 'mlflow.db'}"
    same = {data.experiment_id: data.experiment_id}, {data.run_id: data.run_id}
    diffs = [d for name in data.names for d in compare_prompt(source, restored, name, *same)]
    for name in data.names:
        expected, got = prompt_versions(source, name), prompt_versions(restored, name)
        assert sorted(got) == sorted(expected)
        diffs += [d for number in expected for d in differences(dict(expected[number]), dict(got[number]), f"{name} v{number}")]
        diffs += differences(*(dict(client_for(uri)._get_registry_client().get_registered_model(name)) for uri in (source, restored)), name)
    assert not diffs, "\n".join(diffs)
    assert data.deleted_version not in prompt_versions(restored, data.main)  # the gap, with no placeholder

    before = database_rows(restored)
    again, _ = restore(archive, root)
    assert again["prompts"] == (0, 2, 0) and again["prompt_versions"][0] == 0
    assert database_rows(restored) == before


def test_evaluation_datasets(scratch_server, unique_prefix, tmp_path):
    """A dataset with its ID, times, creators, digest, schema, profile, tags, experiment links, and every record."""
    name, experiments, dataset_id = build_dataset(scratch_server.url, unique_prefix)
    archive, root = tmp_path / "datasets.mlar", tmp_path / "restored"
    export_cli(archive, scratch_server.url, "--experiments", ",".join(experiments), "--evaluation-datasets", name)
    counts, _ = restore(archive, root)
    expected = dataset_fields(scratch_server.backend_uri, dataset_id)
    assert counts["evaluation_datasets"] == (1, 0, 0)
    assert counts["evaluation_dataset_records"] == (len(expected["records"]), 0, 0)

    restored = f"sqlite:///{root / 'mlflow.db'}"
    got = dataset_fields(restored, dataset_id)
    diffs = differences({k: v for k, v in expected.items() if k != "records"}, got, "dataset")
    for number, (want, have) in enumerate(zip(expected["records"], got["records"])):
        diffs += differences(want, have, f"record {number}")
    assert len(got["records"]) == len(expected["records"])
    assert not diffs, "\n".join(diffs)

    before = database_rows(restored)
    again, _ = restore(archive, root)
    assert again["evaluation_datasets"] == (0, 1, 0) and again["evaluation_dataset_records"][0] == 0
    assert database_rows(restored) == before


def test_traces_of_a_deleted_experiment(tmp_path):
    """MLflow's store writes traces only into active experiments; a deleted one's traces are restored all the same."""
    archive, root = tmp_path / "deleted.mlar", tmp_path / "restored"
    trace_ids = write_trace_archive(archive, "deleted", n_traces=3, n_spans=2)
    counts, _ = restore(archive, root)
    assert counts["traces"] == (3, 0, 0) and counts["spans"][0] == 6
    client = TracingClient(f"sqlite:///{root / 'mlflow.db'}")
    assert [len(client.get_trace(t).data.spans) for t in trace_ids] == [2, 2, 2]
    assert MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_experiment("1").lifecycle_stage == "deleted"
