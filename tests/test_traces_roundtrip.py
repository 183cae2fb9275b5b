"""Round trips of traces, spans and assessments between real servers.

The traces (``tests/traces_data.py``) are logged once on ``scratch_server`` under a
unique experiment name, plus one artifact-stored trace whose ``traces.json`` is then
deleted (its spans cannot be read). One export with ``--experiments <name>`` is imported
into an empty ``module_dest_server``; the other tests read that archive again.
"""

from __future__ import annotations

import tarfile
import time
import uuid

import pytest
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import TraceMetadataKey

import archive_cli
from archive_cli import export_counts, import_counts
from test_models_roundtrip import archive_contents
from traces_data import MODEL_NAME, RUN_NAME, artifact_trace, build_traces, compare_trace, traces_of


@pytest.fixture(scope="module")
def traced(scratch_server, tmp_path_factory):
    name = f"traces-{uuid.uuid4().hex[:8]}"
    ids = build_traces(scratch_server.url, name)
    client = MlflowClient(scratch_server.url)
    experiment_id = client.get_experiment_by_name(name).experiment_id
    broken = TracingClient(scratch_server.url).get_trace_info(artifact_trace(scratch_server.url, experiment_id, int(time.time() * 1000)))
    repository = get_artifact_repository(broken.tags["mlflow.artifactLocation"], tracking_uri=scratch_server.url)
    repository.delete_artifacts("traces.json")
    archive = tmp_path_factory.mktemp("traces") / "traces.mlar"
    exported = archive_cli.export(archive, scratch_server.url, "--experiments", name, check=False)
    # The shared server must not keep a trace that fails every later export of it.
    client.delete_traces(experiment_id, trace_ids=[broken.trace_id])
    return {"name": name, "ids": ids, "experiment_id": experiment_id, "archive": archive, "exported": exported,
            "broken": broken.trace_id, "source": scratch_server.url}


@pytest.fixture(scope="module")
def imported(traced, module_dest_server):
    result = archive_cli.import_(traced["archive"], module_dest_server.url)
    return {"result": result, "dest": module_dest_server.url}


def _dest_experiment(uri: str, name: str) -> str:
    return MlflowClient(uri).get_experiment_by_name(name).experiment_id


def _id_maps(source: str, dest: str, name: str, dest_name: str | None = None) -> tuple[dict, dict]:
    """Source -> destination run and logged-model IDs of the experiment, by name."""
    maps = []
    for search in ("search_runs", "search_logged_models"):
        found = []
        for uri, experiment in ((source, name), (dest, dest_name or name)):
            client = MlflowClient(uri)
            items = getattr(client, search)([_dest_experiment(uri, experiment)])
            found.append({(i.info.run_name if hasattr(i, "info") else i.name): (i.info.run_id if hasattr(i, "info") else i.model_id) for i in items})
        maps.append({found[0][k]: found[1][k] for k in found[0]})
    return maps[0], maps[1]


def test_export_counts_the_unreadable_trace_as_one_failure(traced):
    exported = traced["exported"]
    assert exported.returncode == 1, exported.describe()
    assert f"spans of trace {traced['broken']} could not be read" in exported.stderr_text
    counts = export_counts(exported.stderr_text)
    assert counts["traces"] == len(traced["ids"])
    tables, _ = archive_contents(traced["archive"])
    assert {r["trace_id"] for r in tables["traces"]} == set(traced["ids"].values())
    assert counts["spans"] == len(tables["spans"]) and counts["assessments"] == len(tables["assessments"])


def test_every_trace_span_and_assessment_arrives_unchanged(traced, imported):
    counts = import_counts(imported["result"].stderr_text)
    assert counts["traces"] == (len(traced["ids"]), 0, 0), imported["result"].describe()
    source = traces_of(traced["source"], traced["experiment_id"])
    source.pop(traced["broken"], None)
    dest = traces_of(imported["dest"], _dest_experiment(imported["dest"], traced["name"]))
    assert set(dest) == set(source)
    run_ids, model_ids = _id_maps(traced["source"], imported["dest"], traced["name"])
    diffs = [d for trace_id in source for d in compare_trace(source[trace_id], dest[trace_id], run_ids, model_ids)]
    assert not diffs, "\n".join(diffs)

    # The documented rewrites really happened, and the edge cases are in the data.
    run_trace = dest[traced["ids"]["run"]].info
    dest_run = MlflowClient(imported["dest"]).search_runs([run_trace.experiment_id], f"attributes.run_name = '{RUN_NAME}'")[0]
    assert run_trace.trace_metadata[TraceMetadataKey.SOURCE_RUN] == dest_run.info.run_id
    assert source[traced["ids"]["run"]].info.trace_metadata[TraceMetadataKey.SOURCE_RUN] != dest_run.info.run_id
    of_run = TracingClient(imported["dest"]).search_traces(
        locations=[run_trace.experiment_id], run_id=dest_run.info.run_id, include_spans=False
    )
    assert {t.info.trace_id for t in of_run} == {traced["ids"]["run"], traced["ids"]["pipeline"]}  # metadata and link
    model_trace = dest[traced["ids"]["model"]].info
    dest_model = MlflowClient(imported["dest"]).search_logged_models([model_trace.experiment_id])[0]
    assert dest_model.name == MODEL_NAME and model_trace.trace_metadata[TraceMetadataKey.MODEL_ID] == dest_model.model_id
    pipeline = dest[traced["ids"]["pipeline"]]
    assert len(pipeline.data.spans) == 3 and any(s.events for s in pipeline.data.spans)
    overridden = {a.overrides for a in pipeline.info.assessments if a.overrides}
    assert overridden and all(a.valid is False for a in pipeline.info.assessments if a.assessment_id in overridden)
    assert any(a.span_id for a in pipeline.info.assessments)
    error_trace = dest[traced["ids"]["error"]]
    assert error_trace.info.state.value == "ERROR" and any(e.name == "exception" for s in error_trace.data.spans for e in s.events)
    assert [a.feedback.error.error_code for a in error_trace.info.assessments] == ["TIMEOUT"]
    assert "mlflow.trace.spansLocation" not in dest[traced["ids"]["artifact"]].info.tags  # still a traces.json


def test_second_import_creates_nothing(traced, imported):
    again = archive_cli.import_(traced["archive"], imported["dest"])
    assert import_counts(again.stderr_text)["traces"] == (0, len(traced["ids"]), 0)


def test_selectors_and_time_window(traced, tmp_path):
    ids, name = traced["ids"], traced["name"]
    chosen = [ids["pipeline"], ids["artifact"]]
    cases = {
        "by-id": (["--experiments", name, "--traces", ",".join(chosen)], set(chosen)),
        "until": (["--experiments", name, "--traces-until", "2021-01-01"], {ids["artifact"]}),
        "since": (["--experiments", name, "--traces-since", "2021-01-01"], set(ids.values()) - {ids["artifact"]}),
        "none": (["--experiments", name, "--no-traces"], set()),
        "ids-alone": (["--traces", ids["run"]], {ids["run"]}),
    }
    for label, (options, expected) in cases.items():
        path = tmp_path / f"{label}.mlar"
        archive_cli.export(path, traced["source"], *options)
        tables, _ = archive_contents(path)
        assert {r["trace_id"] for r in tables.get("traces", [])} == expected, label
        runs = {r["run_name"] for r in tables.get("runs", [])}
        assert (runs == set()) if label == "ids-alone" else (RUN_NAME in runs), label
        assert [r["name"] for r in tables["experiments"]] == [name], label
    missing = archive_cli.export(tmp_path / "missing.mlar", traced["source"], "--traces", "tr-" + "0" * 32, check=False)
    assert missing.returncode == 1 and "No trace 'tr-00000000000000000000000000000000'" in missing.stderr_text, missing.describe()


def test_interrupted_import_finishes_with_every_trace_once(traced, dest_server, tmp_path):
    """An archive cut off after the spans of the first trace chunk leaves its traces partial; the next run redoes them."""
    with tarfile.open(traced["archive"]) as tar:
        cut = next(m.offset for m in tar.getmembers() if m.name.startswith("traces/000001/assessments"))
    truncated = tmp_path / "cut.mlar"
    truncated.write_bytes(traced["archive"].read_bytes()[:cut])
    renamed = tmp_path / "rename.csv"
    renamed.write_text(f"{traced['name']},{traced['name']}-resumed\n")
    # --no-verify: as for a stream, the damage is found only as it is read, after the spans went in.
    first = archive_cli.import_(truncated, dest_server.url, "--experiment-rename-file", renamed, "--no-verify", check=False)
    assert first.returncode != 0
    dest_experiment = _dest_experiment(dest_server.url, f"{traced['name']}-resumed")
    partial = TracingClient(dest_server.url).search_traces(locations=[dest_experiment], max_results=500, include_spans=False)
    assert {t.info.tags.get("mlflow_archive.import_state") for t in partial} == {"partial"}

    again = archive_cli.import_(traced["archive"], dest_server.url, "--experiment-rename-file", renamed)
    assert import_counts(again.stderr_text)["traces"] == (len(traced["ids"]), 0, 0)
    dest = traces_of(dest_server.url, dest_experiment)
    source = traces_of(traced["source"], traced["experiment_id"])
    source.pop(traced["broken"], None)
    assert sorted(dest) == sorted(source)
    run_ids, model_ids = _id_maps(traced["source"], dest_server.url, traced["name"], f"{traced['name']}-resumed")
    diffs = [d for trace_id in source for d in compare_trace(source[trace_id], dest[trace_id], run_ids, model_ids)]
    assert not diffs, "\n".join(diffs)


def test_trace_linked_to_a_prompt_is_found_by_prompt_on_the_destination(scratch_server, dest_server, unique_prefix, tmp_path):
    """The trace->prompt association (what ``prompt = "name/version"`` searches read) is made again on import."""
    import mlflow
    from models_data import using_server
    from traces_data import flush_traces

    experiment, prompt = f"{unique_prefix}linked", f"{unique_prefix}prompt"
    with using_server(scratch_server.url):
        version = mlflow.genai.register_prompt(name=prompt, template="Answer {{q}}")
        mlflow.set_experiment(experiment)
        with mlflow.start_span(name="uses a prompt"):
            pass
        trace_id = mlflow.get_last_active_trace_id()
        flush_traces()
        MlflowClient(scratch_server.url).link_prompt_versions_to_trace([version], trace_id)
    by_prompt = f'prompt = "{prompt}/1"'
    source_experiment = MlflowClient(scratch_server.url).get_experiment_by_name(experiment).experiment_id
    assert [t.info.trace_id for t in MlflowClient(scratch_server.url).search_traces([source_experiment], by_prompt)] == [trace_id]

    archive = tmp_path / "linked.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", experiment, "--prompts", prompt)
    result = archive_cli.import_(archive, dest_server.url)
    assert "could not link" not in result.stderr_text, result.describe()

    dest = MlflowClient(dest_server.url)
    dest_experiment = dest.get_experiment_by_name(experiment).experiment_id
    assert [t.info.trace_id for t in dest.search_traces([dest_experiment], by_prompt)] == [trace_id]
