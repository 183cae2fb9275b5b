"""Data and field-by-field comparisons for the restore of logged models, traces, prompts and evaluation datasets.

Builders use public MLflow APIs on a server; comparisons read both sides through MLflow's own SQL store
(the source server's database and the restored one), so both are rendered alike.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow.genai.datasets as genai_datasets
from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, LoggedModelOutput, LoggedModelStatus, Metric, Trace, TraceData
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import SpansLocation, TraceTagKey

from datasets_data import _make_traces, _nested_batches
from models_data import using_server

METRIC_TIME = 1_700_000_000_000


@dataclass
class LoggedModelsData:
    experiment: str
    experiment_id: str
    run_ids: list[str]
    model_ids: list[str]
    registered_model: str


def build_logged_models(uri: str, prefix: str, tmp: Path) -> LoggedModelsData:
    """Two logged models (params, tags, metrics with datasets, files, a run's output and another run's input),
    a registered model with versions from ``models:/`` sources, and a version of files from an unexported run."""
    client = MlflowClient(uri, registry_uri=uri)
    experiment = f"{prefix}models"
    experiment_id = client.create_experiment(experiment)
    runs = [client.create_run(experiment_id, run_name=f"r{i}").info.run_id for i in range(2)]
    files = tmp / "model-files"
    (files / "data").mkdir(parents=True)
    model_ids = []
    for i, (name, status) in enumerate((("ready", LoggedModelStatus.READY), ("failed", LoggedModelStatus.FAILED))):
        model = client.create_logged_model(
            experiment_id, name=name, source_run_id=runs[0], tags={"team": "a", "i": str(i)},
            params={"alpha": str(0.5 + i), "layers": "3"}, model_type="agent" if i == 0 else None,
        )
        (files / "MLmodel").write_text(f"artifact_path: {model.artifact_location}\nmodel_id: {model.model_id}\nrun_id: {runs[0]}\n")
        (files / "data" / "weights.bin").write_bytes(bytes(range(256)) * (i + 1))
        client.log_model_artifacts(model.model_id, str(files))
        client.log_batch(runs[0], metrics=[
            Metric("accuracy", 0.5 + step / 10 + i, METRIC_TIME + step, step, model_id=model.model_id,
                   dataset_name="eval", dataset_digest="abc123", run_id=runs[0])
            for step in range(3)
        ] + [Metric("nan", float("nan"), METRIC_TIME, 0, model_id=model.model_id, run_id=runs[0])])
        client.finalize_logged_model(model.model_id, status)
        model_ids.append(model.model_id)
    client.log_outputs(runs[0], [LoggedModelOutput(model_ids[0], step=4)])
    client.log_inputs(runs[1], models=[LoggedModelInput(model_ids[0])])

    name = f"{prefix}registered"
    client.create_registered_model(name, tags={"k": "v"})
    client.create_model_version(name, f"models:/{model_ids[0]}", run_id=runs[0], model_id=model_ids[0], tags={"from": "model"})
    outside_experiment = client.create_experiment(f"{prefix}outside")
    outside = client.create_run(outside_experiment).info.run_id
    (tmp / "outside").mkdir()
    (tmp / "outside" / "model.pkl").write_bytes(b"outside model")
    client.log_artifacts(outside, str(tmp / "outside"), "model")
    source = f"{client.get_run(outside).info.artifact_uri}/model"
    client.create_model_version(name, source, run_id=outside, description="files carried")
    client.delete_run(outside)  # so the export leaves it out: the version's files travel as carried files
    client.set_registered_model_alias(name, "champion", "1")
    return LoggedModelsData(experiment, experiment_id, runs, model_ids, name)


def logged_model_fields(client: MlflowClient, model_id: str) -> dict:
    model = client.get_logged_model(model_id)
    return {
        "model_id": model.model_id, "experiment_id": model.experiment_id, "name": model.name,
        "creation_timestamp": model.creation_timestamp, "last_updated_timestamp": model.last_updated_timestamp,
        "status": model.status, "status_message": model.status_message, "model_type": model.model_type,
        "source_run_id": model.source_run_id, "tags": model.tags, "params": model.params,
        "artifact_location": model.artifact_location,
        "metrics": sorted((m.key, str(m.value), m.timestamp, m.step, m.run_id, m.model_id, m.dataset_name, m.dataset_digest)
                          for m in model.metrics or []),
    }


def run_model_links(client: MlflowClient, run_id: str) -> tuple:
    run = client.get_run(run_id)
    return (sorted(m.model_id for m in run.inputs.model_inputs or []),
            sorted((m.model_id, m.step) for m in run.outputs.model_outputs or []) if run.outputs else [])


def differences(expected: dict, got: dict, what: str) -> list[str]:
    return [f"{what} {key}: source {expected[key]!r}, restored {got.get(key)!r}" for key in expected if expected[key] != got.get(key)]


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_traces(database: Path, artifacts: Path, experiment_id: str) -> dict:
    """The traces of an experiment with their spans, read from a server's database and artifacts folder through
    MLflow's SQL store (no server): spans kept as ``traces.json`` are read where the trace's artifact location points."""
    client = TracingClient(f"sqlite:///{database}")
    found = {}
    for info in client.search_traces(locations=[experiment_id], max_results=500, include_spans=False):
        if info.info.tags.get(TraceTagKey.SPANS_LOCATION) == SpansLocation.TRACKING_STORE.value:
            found[info.info.trace_id] = client.get_trace(info.info.trace_id)
            continue
        location = info.info.tags["mlflow.artifactLocation"].removeprefix("mlflow-artifacts:/")
        data = json.loads((artifacts / location / "traces.json").read_text(encoding="utf-8"))
        found[info.info.trace_id] = Trace(client.get_trace_info(info.info.trace_id), TraceData.from_dict(data))
    return found


def build_dataset(uri: str, prefix: str) -> tuple[str, list[str], str]:
    """(name, experiment names, dataset ID) of a dataset linked to two experiments, with records of every shape
    (nested JSON, outputs of every kind, tags, a document source) and records made from traces."""
    experiments = [f"{prefix}a", f"{prefix}b"]
    ids = [MlflowClient(uri).create_experiment(name) for name in experiments]
    with using_server(uri):
        dataset = genai_datasets.create_dataset(f"{prefix}dataset", experiment_id=ids, tags={"purpose": "restore", "ü": "✓"})
        for batch in _nested_batches():
            dataset.merge_records(batch)
        traces = _make_traces(MlflowClient(uri), ids[0], 2)
        dataset.merge_records([MlflowClient(uri).get_trace(t) for t in traces])
    return dataset.name, experiments, dataset.dataset_id


def dataset_fields(uri: str, dataset_id: str) -> dict:
    """Everything MLflow's store reads of a dataset, its experiment links and records (IDs and times included)."""
    client = MlflowClient(uri)
    store = client._tracking_client.store
    dataset = store.get_dataset(dataset_id)
    return {
        **{k: getattr(dataset, k) for k in ("dataset_id", "name", "digest", "created_time", "last_update_time",
                                             "created_by", "last_updated_by", "schema", "profile", "tags")},
        "experiment_ids": sorted(store.get_dataset_experiment_ids(dataset_id)),
        "records": [{
            **{k: getattr(r, k) for k in ("dataset_record_id", "inputs", "outputs", "expectations", "tags", "source_id",
                                          "created_time", "last_update_time", "created_by", "last_updated_by")},
            "source": r.source.to_dict() if r.source else None,
        } for r in store._load_dataset_records(dataset_id, max_results=None)[0]],
    }


def write_trace_archive(path: Path, lifecycle_stage: str, n_traces: int, n_spans: int) -> list[str]:
    """An archive of one experiment (in ``lifecycle_stage``) whose traces have spans in the tracking store; their IDs."""
    from mlflow_archive.archive import ArchiveWriter

    trace_ids = ["tr-" + uuid.uuid4().hex for _ in range(n_traces)]
    start = METRIC_TIME
    with open(path, "wb") as out:
        writer = ArchiveWriter(out, {"source": {"tracking_uri": "test"}}, 0)
        writer.chunk("experiments").write_table("experiments", {
            "experiment_id": ["1"], "name": ["traced"], "artifact_location": [None], "lifecycle_stage": [lifecycle_stage],
            "creation_time": [start], "last_update_time": [start], "tags": [[]],
        })
        chunk = writer.chunk("traces")
        chunk.write_table("traces", {
            "trace_id": trace_ids, "experiment_id": ["1"] * n_traces, "client_request_id": [None] * n_traces,
            "request_time": [start + i for i in range(n_traces)], "execution_duration": [50] * n_traces,
            "state": ["OK"] * n_traces, "request_preview": ['{"q": 1}'] * n_traces, "response_preview": ['"a"'] * n_traces,
            "trace_metadata": [[{"key": "mlflow.trace_schema.version", "value": "3"}]] * n_traces,
            "tags": [[{"key": "mlflow.trace.spansLocation", "value": "TRACKING_STORE"}]] * n_traces,
            "linked_run_ids": [None] * n_traces,
        })
        spans = [{
            "trace_id": trace_id, "span_id": f"{s + 1:016x}", "parent_span_id": None if s == 0 else f"{1:016x}",
            "name": f"span {s}", "start_time_ns": (start + i) * 1_000_000 + s, "end_time_ns": (start + i + 50) * 1_000_000,
            "status_code": "OK", "status_message": None, "events_json": "[]", "links_json": None,
            "attributes_json": json.dumps({"mlflow.traceRequestId": json.dumps(trace_id), "mlflow.spanType": '"LLM"'}),
        } for i, trace_id in enumerate(trace_ids) for s in range(n_spans)]
        chunk.write_table("spans", {name: [row[name] for row in spans] for name in spans[0]})
        writer.close()
    return trace_ids
