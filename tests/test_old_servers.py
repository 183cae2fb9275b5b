"""MLflow 2.x servers: export from 2.22, a 2.22 archive into 3.x, and a 3.x archive into 2.22.

One MLflow 2.22 server (``legacy_server``) serves every test here. Its data is logged by
``legacy_log.py``, run with the 2.22 virtualenv's python, so it is what an MLflow 2 user has.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Trace
from sklearn.linear_model import LinearRegression

import archive_cli
from compare import all_runs, compare_servers, runs_by_source_id
from flaky_proxy import FlakyProxy
from mlflow_archive import inspect_archive
from mlflow_archive.endpoints import KIND_PROBES, TrackingSource
from models_data import client_for, compare_registered_model, id_maps, model_versions, predict, using_server
from servers import legacy_venv
from tracking_data import build_small_experiment
from traces_data import compare_trace

HERE = Path(__file__).parent


def _log_legacy_data(server, prefix: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONPATH")}
    script = subprocess.run(
        [str(legacy_venv() / "bin" / "python"), str(HERE / "legacy_log.py"), server.url, prefix],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert script.returncode == 0, script.stderr[-4000:]
    return json.loads(script.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def legacy_data(legacy_server, tmp_path_factory):
    """The 2.x data set, logged once under a prefix of its own."""
    return _log_legacy_data(legacy_server, f"legacy-{tmp_path_factory.mktemp('p').name[-6:]}-")


def _prefix(data: dict) -> str:
    return data["experiment"].removesuffix("legacy-exp")


def _never(n, method, path):
    return None


def _asked_for_logged_models(proxy: FlakyProxy) -> list[str]:
    return [path for _, path in proxy.requests if "logged-models" in path]


def test_capabilities_and_header_of_a_2x_export(legacy_server, legacy_data, tmp_path):
    archive = tmp_path / "legacy.mlar"
    with FlakyProxy(legacy_server.url, _never) as watched:
        result = archive_cli.export(archive, watched.url, "--experiments", legacy_data["experiment"], "--models", legacy_data["model"])
    assert _asked_for_logged_models(watched) == [] and len(watched.requests) > 10
    # 2.x traces: found by the V2 search, whose infos are whole (no assessments to read again); spans from traces.json.
    paths = [path.split("?")[0] for _, path in watched.requests]
    assert "/api/2.0/mlflow/traces" in paths and not [p for p in paths if p.endswith("/info")]
    assert sum(p.endswith("/traces.json") for p in paths) == len(legacy_data["traces"])
    source = inspect_archive(str(archive))["header"]["source"]
    assert source["mlflow_version"] == legacy_data["mlflow_version"]
    assert "logged_models" not in source["object_kinds"] and {"experiments", "runs", "registry", "traces"} <= set(source["object_kinds"])
    assert f"logged_models: skipped, the server at {watched.url} (MLflow {legacy_data['mlflow_version']})" in result.stderr_text


def test_every_selector_exports_from_2x(legacy_server, legacy_data, tmp_path):
    client = client_for(legacy_server.url)
    experiment = client.get_experiment_by_name(legacy_data["experiment"])
    active_runs = client.search_runs([experiment.experiment_id])
    versions = list(model_versions(client, legacy_data["model"]).values())
    version_runs = {v.run_id for v in versions}

    by_experiment = archive_cli.export_counts(
        archive_cli.export(tmp_path / "e.mlar", legacy_server.url, "--experiments", legacy_data["experiment"]).stderr_text
    )
    assert by_experiment["runs"] == len(active_runs) and by_experiment["experiments"] == 1
    assert by_experiment.get("registered_models", 0) == 0

    by_model = archive_cli.export_counts(
        archive_cli.export(tmp_path / "m.mlar", legacy_server.url, "--models", legacy_data["model"]).stderr_text
    )
    assert by_model["registered_models"] == 1 and by_model["model_versions"] == len(versions)
    assert by_model["runs"] == len(version_runs) and by_model["experiments"] == 1

    both = archive_cli.export_counts(
        archive_cli.export(
            tmp_path / "b.mlar", legacy_server.url, "--experiments", legacy_data["experiment"], "--models", legacy_data["model"]
        ).stderr_text
    )
    assert both["runs"] == len(active_runs) and both["model_versions"] == len(versions)

    one_trace = archive_cli.export_counts(
        archive_cli.export(tmp_path / "t.mlar", legacy_server.url, "--traces", legacy_data["traces"]["error"]).stderr_text
    )
    assert one_trace["traces"] == 1 and one_trace["experiments"] == 1 and one_trace.get("runs", 0) == 0

    everything = archive_cli.export_counts(archive_cli.export(tmp_path / "all.mlar", legacy_server.url).stderr_text)
    assert everything["experiments"] == len(client.search_experiments())
    assert everything["registered_models"] == len(client.search_registered_models(max_results=1000))


def test_2x_archive_into_3x_keeps_everything(legacy_server, legacy_data, module_dest_server, tmp_path):
    prefix = _prefix(legacy_data)
    archive = tmp_path / "legacy.mlar"
    archive_cli.export(
        archive, legacy_server.url, "--experiments", f"{prefix}*", "--models", f"{prefix}*",
        "--export-deleted-runs", "--export-deleted-experiments",
    )
    source = client_for(legacy_server.url)
    experiments = [source.get_experiment_by_name(n) for n in (legacy_data["experiment"], f"{prefix}legacy-gone")]
    assert experiments[1].lifecycle_stage == "deleted"
    source_runs = all_runs(source, [e.experiment_id for e in experiments])
    result = archive_cli.import_(archive, module_dest_server.url, "--strict")
    counts = archive_cli.import_counts(result.stderr_text)
    assert counts["runs"] == (len(source_runs), 0, 0) and counts["model_versions"] == (3, 0, 0), result.stderr_text

    comparison = compare_servers(legacy_server.url, module_dest_server.url, experiment_names=[e.name for e in experiments])
    assert comparison.compared_runs == len(source_runs)
    dest = MlflowClient(module_dest_server.url)
    doomed = comparison.run_map[legacy_data["doomed"]]
    assert dest.get_run(doomed).info.lifecycle_stage == "deleted"
    child = dest.get_run(comparison.run_map[legacy_data["child"]])
    assert child.data.tags["mlflow.parentRunId"] == comparison.run_map[legacy_data["parent"]]
    # compare_servers matched every point; this says the points it matched hold NaN and ±inf
    # (which MLflow's SQL store keeps as ±max float).
    loss = [m.value for m in dest.get_metric_history(comparison.run_map[legacy_data["parent"]], "loss")]
    infinite = {v for v in loss if abs(v) > 1e308}
    assert any(math.isnan(v) for v in loss) and len(infinite) == 2 and min(infinite) < 0 < max(infinite)

    maps = id_maps(module_dest_server.url, runs_by_source_id(module_dest_server.url))
    assert compare_registered_model(legacy_server.url, module_dest_server.url, legacy_data["model"], maps) == []
    # A storage URI is in no run of the archive: the version keeps it, and the summary says so.
    kept = model_versions(client_for(module_dest_server.url), legacy_data["storage_model"])[1]
    assert (kept.source, kept.description) == ("s3://legacy-bucket/models/m2", "in a bucket")
    assert f"version 1 of {legacy_data['storage_model']!r} keeps its source 's3://legacy-bucket/models/m2'" in result.stderr_text
    dest_versions = model_versions(client_for(module_dest_server.url), legacy_data["model"])
    assert sorted(dest_versions) == [1, 3] and dest_versions[3].current_stage == "Production"
    features = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, -1.0]]
    assert predict(module_dest_server.url, f"models:/{legacy_data['model']}@champion", features) == pytest.approx(legacy_data["prediction"])

    # Traces: IDs (2.x request IDs), times, state, previews, metadata, tags and every span kept; the
    # spans stay a traces.json artifact, as the 2.x server kept them; the source run is the imported one.
    assert counts["traces"] == (2, 0, 0)
    # MLflow 3's client cannot read a 2.x server's traces (get_trace answers HTTP 500): as the 2.x client read them.
    source_traces = {t: Trace.from_json(text) for t, text in legacy_data["trace_json"].items()}
    with using_server(module_dest_server.url):
        dest_traces = {t: mlflow.get_trace(t) for t in legacy_data["traces"].values()}
    diffs = [d for t in source_traces for d in compare_trace(source_traces[t], dest_traces[t], comparison.run_map, {})]
    assert not diffs, "\n".join(diffs)
    in_run = dest_traces[legacy_data["traces"]["in_run"]]
    assert in_run.info.trace_metadata["mlflow.sourceRun"] == comparison.run_map[legacy_data["parent"]]
    assert in_run.info.tags["reviewed"] == "oui ✓" and len(in_run.data.spans) == 2
    assert "mlflow.trace.spansLocation" not in in_run.info.tags
    assert dest_traces[legacy_data["traces"]["error"]].info.state.value == "ERROR"

    again = archive_cli.import_counts(archive_cli.import_(archive, module_dest_server.url).stderr_text)
    assert again["runs"] == (0, len(source_runs), 0) and again["model_versions"] == (0, 3, 0)
    assert again["traces"] == (0, 2, 0)


def test_2x_database_is_exported_from_an_upgraded_copy(legacy_server, legacy_data, tmp_path):
    """The 2.22 server's own SQLite file, exported directly: MLflow 3's store would upgrade it in place, so the
    export upgrades a copy and reads that. The file keeps its 2.x schema (the 2.22 server goes on using it), and
    the archive holds the same rows and files as a REST export of the server."""
    import sqlite3

    from archive_tables import archive_contents
    from database_export_data import header, table_differences

    def revision() -> str:
        with sqlite3.connect(f"file:{legacy_server.backend_path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]

    before = revision()
    prefix = _prefix(legacy_data)
    options = ("--experiments", f"{prefix}*", "--models", f"{prefix}*", "--export-deleted-runs", "--export-deleted-experiments")
    rest, database = tmp_path / "rest.mlar", tmp_path / "database.mlar"
    archive_cli.export(rest, legacy_server.url, *options)
    result = archive_cli.export(database, legacy_server.backend_uri, "--artifacts-destination", legacy_server.artifacts_path, *options)
    assert revision() == before
    assert f"the database has the schema of an older MLflow (revision {before})" in result.stderr_text
    assert header(database)["source"]["schema_revision"] == before
    assert header(database)["source"]["registry_uri"] == header(database)["source"]["tracking_uri"]
    rest_tables, rest_files = archive_contents(rest)
    db_tables, db_files = archive_contents(database)
    differences = table_differences(rest_tables, db_tables)
    assert not differences, "\n".join(differences)
    assert db_files == rest_files and len(db_tables["traces"]) == 2
    assert client_for(legacy_server.url).get_experiment_by_name(legacy_data["experiment"]) is not None  # still served


def _make_3x_source(uri: str, prefix: str) -> dict:
    """A small MLflow 3 data set: a run with a dataset, files and a logged model, and a registered model."""
    client = client_for(uri)
    name = prefix + "new-model"
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0]])
    model = LinearRegression().fit(features, np.array([1.0, 2.0, 3.0]))
    with using_server(uri), tempfile.TemporaryDirectory() as tmp:
        experiment_id = client.create_experiment(prefix + "new-exp", tags={"kind": "3.x"})
        with mlflow.start_run(experiment_id=experiment_id, run_name="three") as run:
            mlflow.log_params({"lr": "0.1"})
            for step, value in enumerate([0.5, math.nan, -math.inf]):
                mlflow.log_metric("loss", value, step=step)
            mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="d"), context="training")
            mlflow.sklearn.save_model(model, f"{tmp}/classic", pip_requirements=["scikit-learn"])
            mlflow.log_artifacts(f"{tmp}/classic", "classic")
            mlflow.sklearn.log_model(model, name="logged", registered_model_name=name, pip_requirements=["scikit-learn"])
    client.create_model_version(name, f"runs:/{run.info.run_id}/classic", run_id=run.info.run_id, description="classic")
    client.transition_model_version_stage(name, "2", "Staging")
    client.set_registered_model_alias(name, "prod", "2")
    return {"experiment": prefix + "new-exp", "model": name, "run": run.info.run_id}


def test_3x_archive_into_2x_skips_what_it_cannot_hold(scratch_server, legacy_server, unique_prefix, tmp_path):
    data = _make_3x_source(scratch_server.url, unique_prefix)
    archive = tmp_path / "new.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", data["experiment"], "--models", data["model"])

    with FlakyProxy(legacy_server.url, _never) as watched:
        result = archive_cli.import_(archive, watched.url)
        # Again, strict: the experiment exists now, and its runs are indexed, not its logged models.
        strict = archive_cli.import_(archive, watched.url, "--strict", check=False)
    assert _asked_for_logged_models(watched) == []
    stderr = result.stderr_text
    counts = archive_cli.import_counts(stderr)
    assert counts["runs"] == (1, 0, 0) and counts["model_versions"] == (1, 0, 0), stderr
    skipped = [line for line in stderr.splitlines() if line.startswith("logged_models: skipped")]
    assert len(skipped) == 1 and "has no logged models" in skipped[0], stderr
    assert f"version(s) 1 of {data['model']!r} were not imported" in stderr

    compare_servers(scratch_server.url, legacy_server.url, experiment_names=[data["experiment"]])
    legacy = client_for(legacy_server.url)
    versions = model_versions(legacy, data["model"])
    assert sorted(versions) == [2] and versions[2].current_stage == "Staging" and versions[2].description == "classic"
    assert legacy.get_registered_model(data["model"]).aliases == {"prod": "2"}

    assert strict.returncode == 1 and "--strict" in strict.stderr_text
    assert archive_cli.import_counts(strict.stderr_text)["runs"] == (0, 1, 0)


def _every(period: int, answer):
    """Fail every ``period``-th write to the API with ``answer``: reads stay clean for the comparison."""
    return lambda n, method, path: answer if method != "GET" and path.startswith("/api/") and n % period == 0 else None


def test_import_under_load_retries_then_names_what_the_server_answered(scratch_server, legacy_server, unique_prefix, tmp_path):
    for trouble in (503, "drop"):
        source = build_small_experiment(scratch_server.url, f"{unique_prefix}{trouble}", n_runs=4)
        archive = tmp_path / f"{trouble}.mlar"
        archive_cli.export(archive, scratch_server.url, "--experiments", source.name)
        with FlakyProxy(legacy_server.url, _every(4, trouble)) as proxy:
            counts = archive_cli.import_counts(archive_cli.import_(archive, proxy.url).stderr_text)
        assert counts["runs"] == (4, 0, 0) and proxy.failures > 0
        compare_servers(scratch_server.url, legacy_server.url, experiment_names=[source.name])

    other = build_small_experiment(scratch_server.url, unique_prefix + "down", n_runs=1)
    archive_cli.export(tmp_path / "down.mlar", scratch_server.url, "--experiments", other.name)
    with FlakyProxy(legacy_server.url, lambda n, method, path: 503 if "runs/create" in path else None) as down:
        failed = archive_cli.import_(tmp_path / "down.mlar", down.url, check=False)
    assert failed.returncode == 1 and down.failures == 5
    assert f"Error: The tracking server at {down.url} answered HTTP 503 (5 tries" in failed.stderr_text, failed.stderr_text
    assert "not answering" not in failed.stderr_text


def test_3x_version_of_a_logged_model_into_2x_from_its_carried_files(scratch_server, legacy_server, unique_prefix, tmp_path):
    data = _make_3x_source(scratch_server.url, unique_prefix)
    archive = tmp_path / "files.mlar"
    archive_cli.export(archive, scratch_server.url, "--models", data["model"], "--export-version-model")
    result = archive_cli.import_(archive, legacy_server.url)
    assert archive_cli.import_counts(result.stderr_text)["model_versions"] == (2, 0, 0), result.stderr_text
    versions = model_versions(client_for(legacy_server.url), data["model"])
    holder = client_for(legacy_server.url).get_run(versions[1].run_id)
    assert versions[1].source == f"runs:/{holder.info.run_id}/model" and sorted(versions) == [1, 2]
    features = [[0.0, 1.0], [1.0, 0.0]]
    assert predict(legacy_server.url, f"models:/{data['model']}/1", features) == pytest.approx(
        predict(scratch_server.url, f"models:/{data['model']}/1", features)
    )


def test_probes_agree_with_the_version_table(legacy_server, scratch_server):
    """A server that reports no version is probed, one request per kind: on both servers the probes
    must find what the version table says."""
    for url in (legacy_server.url, scratch_server.url):
        endpoint = TrackingSource(url)
        endpoint.check_reachable()
        assert endpoint.probed_missing() == endpoint.missing & set(KIND_PROBES), (url, endpoint.server_version)
    assert endpoint.missing == set()  # the 3.x server has every kind
