"""Traces made through MLflow's public tracing API, and a field-by-field comparison of traces.

``build_traces`` logs, into one experiment: ``@mlflow.trace`` functions with nested spans,
a span event and an exception, manual ``mlflow.start_span`` spans, a trace inside a run, a
trace of an active logged model, unicode and a ~1 MB input, feedback + expectation + span
feedback + an override, and one trace whose spans live as a ``traces.json`` artifact (the
storage older clients used) instead of the tracking store's span table.
"""

from __future__ import annotations

import json
import uuid

import mlflow
from mlflow import MlflowClient
from mlflow.entities import AssessmentError, AssessmentSource, Span, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey

from models_data import using_server

LARGE_INPUT = "x" * (1 << 20)
UNICODE = "naïve café – 東京 🚀"
RUN_NAME = "traced-run"
MODEL_NAME = "traced-model"


def flush_traces() -> None:
    mlflow.flush_trace_async_logging()


@mlflow.trace(span_type="CHAIN")
def _pipeline(question: str) -> str:
    with mlflow.start_span(name="retrieve", span_type="RETRIEVER") as span:
        span.set_inputs({"query": question})
        span.add_event(mlflow.entities.SpanEvent("cache-miss", attributes={"key": question[:20], "n": 3}))
        span.set_outputs(["doc-1", "doc-2"])
    return _answer(question)


@mlflow.trace(span_type="LLM")
def _answer(question: str) -> str:
    return f"answer to {question[:30]}"


@mlflow.trace
def _failing(x: int) -> int:
    raise ValueError(f"bad input {x}")


OLD_TRACE_TIME_MS = 1577880000000  # 2020-01-01 12:00 UTC


def artifact_trace(uri: str, experiment_id: str, request_time_ms: int) -> str:
    """A trace as clients before span logging wrote it: trace info, then spans as traces.json."""
    trace_id = "tr-" + uuid.uuid4().hex
    now_ns = request_time_ms * 1_000_000
    request_id = json.dumps(trace_id)

    def span(span_id: str, parent: str | None, name: str, offset: int, attributes: dict) -> Span:
        return Span.from_dict(
            {
                "trace_id": _b64(bytes.fromhex(trace_id[3:])),
                "span_id": _b64(bytes.fromhex(span_id)),
                "parent_span_id": _b64(bytes.fromhex(parent)) if parent else None,
                "name": name,
                "start_time_unix_nano": now_ns + offset,
                "end_time_unix_nano": now_ns + offset + 5_000_000,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {"mlflow.traceRequestId": request_id, **{k: json.dumps(v) for k, v in attributes.items()}},
            }
        )

    spans = [
        span("00000000000000a1", None, "root", 0, {"mlflow.spanType": "AGENT", "mlflow.spanInputs": {"q": UNICODE}}),
        span("00000000000000a2", "00000000000000a1", "child", 1000, {"mlflow.spanType": "TOOL", "mlflow.spanOutputs": [1, 2.5]}),
    ]
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=now_ns // 1_000_000,
        state=TraceState.OK,
        request_preview='{"q": "artifact"}',
        response_preview="[1, 2.5]",
        client_request_id="client-req-1",
        execution_duration=6,
        trace_metadata={"custom.meta": "m1"},
        tags={TraceTagKey.TRACE_NAME: "artifact-trace", "team": "archive"},
    )
    stored = TracingClient(uri).start_trace(info)
    repository = get_artifact_repository(stored.tags["mlflow.artifactLocation"], tracking_uri=uri)
    repository.upload_trace_data(json.dumps(TraceData(spans=spans).to_dict(), ensure_ascii=False))
    return trace_id


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def build_traces(uri: str, experiment_name: str) -> dict[str, str]:
    """Log the traces; returns their IDs by role."""
    client = MlflowClient(uri)
    ids: dict[str, str] = {}
    with using_server(uri):
        experiment_id = mlflow.set_experiment(experiment_name).experiment_id
        _pipeline(UNICODE)
        ids["pipeline"] = mlflow.get_last_active_trace_id()
        try:
            _failing(7)
        except ValueError:
            pass
        ids["error"] = mlflow.get_last_active_trace_id()
        with mlflow.start_span(name="manual", span_type="UNKNOWN") as root:
            root.set_inputs({"big": LARGE_INPUT})
            mlflow.update_current_trace(tags={"kind": "manual"}, client_request_id="req-" + uuid.uuid4().hex[:6])
            with mlflow.start_span(name="inner") as inner:
                inner.set_attribute("custom.number", 42)
                inner.set_outputs({"ok": True})
            root.set_outputs("done")
        ids["manual"] = mlflow.get_last_active_trace_id()
        with mlflow.start_run(run_name=RUN_NAME) as run:
            _answer("inside a run")
            ids["run"] = mlflow.get_last_active_trace_id()
        client.link_traces_to_run([ids["pipeline"]], run.info.run_id)  # an entity association, not metadata
        mlflow.set_active_model(name=MODEL_NAME)
        _answer("with a model")
        ids["model"] = mlflow.get_last_active_trace_id()
        mlflow.clear_active_model()
        flush_traces()

        pipeline = ids["pipeline"]
        retrieve = next(s for s in client.get_trace(pipeline).data.spans if s.name == "retrieve")
        human = AssessmentSource(source_type="HUMAN", source_id="reviewer@example.com")
        first = mlflow.log_feedback(trace_id=pipeline, name="quality", value=0.4, source=human, rationale="weak")
        mlflow.log_expectation(trace_id=pipeline, name="expected", value={"answer": UNICODE, "n": [1, 2]}, source=human)
        mlflow.log_feedback(
            trace_id=pipeline, name="relevance", value=True, span_id=retrieve.span_id,
            source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-1"), metadata={"k": "v"},
        )
        mlflow.override_feedback(trace_id=pipeline, assessment_id=first.assessment_id, value=0.9, rationale="re-read")
        mlflow.log_feedback(trace_id=ids["run"], name="run-feedback", value="fine", source=human)
        mlflow.log_feedback(
            trace_id=ids["error"], name="judge", source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-1"),
            error=AssessmentError(error_code="TIMEOUT", error_message="judge timed out"),
        )
        ids["artifact"] = artifact_trace(uri, experiment_id, OLD_TRACE_TIME_MS)
        mlflow.log_expectation(trace_id=ids["artifact"], name="expected", value=[UNICODE], source=human)
    return ids


# -- Comparison ----------------------------------------------------------------------------

IGNORED_TAGS = {"mlflow.artifactLocation", "mlflow_archive.import_state"}


def _span_fields(span: Span) -> dict:
    return {
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
        "status": (span.status.status_code, span.status.description),
        "attributes": dict(span._span.attributes),
        "events": [(e.name, e.timestamp, e.attributes) for e in span.events],
        "links": [link.to_dict() for link in span.links],
        "inputs": span.inputs,
        "outputs": span.outputs,
        "span_type": span.span_type,
    }


def _assessment_fields(a, run_ids: dict[str, str]) -> dict:
    fields = a.to_dictionary()
    fields.pop("trace_id", None)
    if a.run_id:
        fields["run_id"] = run_ids.get(a.run_id, a.run_id)
    metadata = dict(fields.get("metadata") or {})
    if metadata.get("mlflow.assessment.sourceRunId"):
        metadata["mlflow.assessment.sourceRunId"] = run_ids.get(metadata["mlflow.assessment.sourceRunId"])
    fields["metadata"] = metadata
    fields["valid"] = a.valid
    return fields


def compare_trace(source, dest, run_ids: dict[str, str], model_ids: dict[str, str], imported: bool = True) -> list[str]:
    """Differences between a source trace and its imported copy, with documented rewrites applied.

    ``imported=False`` for a restored copy, which carries no import state tag.
    """
    diffs = []
    s, d = source.info, dest.info
    for field in ("trace_id", "request_time", "execution_duration", "state", "request_preview",
                  "response_preview", "client_request_id"):
        if getattr(s, field) != getattr(d, field):
            diffs.append(f"{s.trace_id} {field}: {getattr(s, field)!r} != {getattr(d, field)!r}")
    expected_metadata = dict(s.trace_metadata)
    if TraceMetadataKey.SOURCE_RUN in expected_metadata:
        expected_metadata[TraceMetadataKey.SOURCE_RUN] = run_ids.get(expected_metadata[TraceMetadataKey.SOURCE_RUN])
    if TraceMetadataKey.MODEL_ID in expected_metadata:
        expected_metadata[TraceMetadataKey.MODEL_ID] = model_ids.get(expected_metadata[TraceMetadataKey.MODEL_ID])
    # An MLflow 3 server marks every trace it starts (a 2.x trace has no such mark until imported).
    expected_metadata.setdefault(TraceMetadataKey.TRACE_INFO_FINALIZED, "true")
    if expected_metadata != d.trace_metadata:
        diffs.append(f"{s.trace_id} metadata: {expected_metadata} != {d.trace_metadata}")
    source_tags = {k: v for k, v in s.tags.items() if k not in IGNORED_TAGS}
    dest_tags = {k: v for k, v in d.tags.items() if k not in IGNORED_TAGS}
    if source_tags != dest_tags:
        diffs.append(f"{s.trace_id} tags: {source_tags} != {dest_tags}")
    if not imported and "mlflow_archive.import_state" in d.tags:
        diffs.append(f"{s.trace_id} still carries the restore's import state tag")
    if imported and d.tags.get("mlflow_archive.import_state") != "complete":
        diffs.append(f"{s.trace_id} is not marked complete on the destination")
    source_spans = sorted((_span_fields(x) for x in source.data.spans), key=lambda f: f["span_id"])
    dest_spans = sorted((_span_fields(x) for x in dest.data.spans), key=lambda f: f["span_id"])
    if source_spans != dest_spans:
        diffs.append(f"{s.trace_id} spans differ:\n{source_spans}\n!=\n{dest_spans}"[:3000])
    source_assessments = sorted((_assessment_fields(a, run_ids) for a in s.assessments), key=lambda f: f["assessment_id"])
    dest_assessments = sorted((_assessment_fields(a, {}) for a in d.assessments), key=lambda f: f["assessment_id"])
    if source_assessments != dest_assessments:
        diffs.append(f"{s.trace_id} assessments: {source_assessments} != {dest_assessments}")
    return diffs


def traces_of(uri: str, experiment_id: str) -> dict:
    """Every trace of an experiment with its spans (``mlflow.get_trace``), by trace ID."""
    infos = TracingClient(uri).search_traces(locations=[experiment_id], max_results=500, include_spans=False)
    # MLflow resolves a trace's artifact location through the process-wide tracking URI.
    with using_server(uri):
        return {t.info.trace_id: mlflow.get_trace(t.info.trace_id) for t in infos}
