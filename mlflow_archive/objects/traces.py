"""Traces: trace infos, every span, and assessments (feedback, expectations, issues).

Export reads trace infos page by page per experiment and fetches each chunk's spans
from where the trace's ``mlflow.trace.spansLocation`` tag says they live: the
tracking store or the trace archive (read by the server), or a ``traces.json``
artifact. Import keeps trace, span and assessment IDs: ``start_trace`` with the
source ID, spans through ``log_spans`` (or as ``traces.json`` again when the source
kept them there), then assessments in creation order, so overrides stay linked.
A trace is tagged ``mlflow_archive.import_state=partial`` until all of it is in;
the next import deletes and redoes a partial one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from dataclasses import replace
from typing import Callable

import pyarrow as pa
from mlflow.entities import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Link,
    Span,
    Trace,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from mlflow.entities.assessment import ExpectationValue, FeedbackValue, IssueReferenceValue
from mlflow.entities.model_registry import PromptVersion
from mlflow.entities.span_status import SpanStatusCode
from mlflow.exceptions import MlflowException
from mlflow.tracing.constant import (
    AssessmentMetadataKey,
    SpansLocation,
    TraceMetadataKey,
    TraceTagKey,
)
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION

from ..archive import Member
from ..context import PROVENANCE_PREFIX, ExportContext, ImportContext
from ..coverage import Uncarried
from ..endpoints import server_trouble
from ..errors import ArchiveError, one_line
from ..schemas import TABLES
from ._common import COMPLETE, PARTIAL, ChunkReplay, batches, sorted_key_values
from .runs import window_filter

SECTION = "traces"
PER_CHUNK = 100
CHUNK_SPAN_BYTES = 64 << 20  # a chunk also ends here, so a few huge traces do not fill memory
SERVER_READ_BATCH = 10  # batch_get_traces' limit per call
# How a span names a file logged beside its trace (an attachment, MLflow 3.18): the files are not carried yet.
ATTACHMENT_REF = "mlflow-attachment://"
SEARCH_BATCH = 100  # trace infos by ID per call
SPANS_PER_CALL = 100
SPAN_BYTES_PER_CALL = 4 << 20  # large spans go a few per request
STATE_TAG = PROVENANCE_PREFIX + "import_state"
SERVER_READ = (SpansLocation.TRACKING_STORE.value, SpansLocation.ARCHIVE_REPO.value)


# -- Export -------------------------------------------------------------------------------

def _window(ctx: ExportContext) -> tuple[int | None, int]:
    """[since, until) of the exported traces' request times; never past the cut-off."""
    options = ctx.options
    until = ctx.cutoff_ms if options.traces_until is None else min(options.traces_until, ctx.cutoff_ms)
    return options.traces_since, until


def _selected(ctx: ExportContext):
    """(trace info, linked source runs) of the selected traces, experiment by experiment."""
    since, until = _window(ctx)
    links: dict[str, dict[str, list[str]]] = {}  # per experiment, found on its first selected trace

    def with_links(info: TraceInfo):
        if info.experiment_id not in links:
            exported_runs = info.experiment_id in ctx.selection.full_experiment_ids
            searched = exported_runs and not ctx.source.v2_traces  # 2.x servers link traces to no other run
            links[info.experiment_id] = _run_links(ctx, info.experiment_id) if searched else {}
        return info, links[info.experiment_id].get(info.trace_id)

    if ctx.selection.trace_ids is not None:
        ids = ctx.selection.trace_ids
        for start in range(0, len(ids), SEARCH_BATCH):
            for info in ctx.source.trace_infos(ids[start : start + SEARCH_BATCH]):
                if (since is None or info.request_time >= since) and info.request_time < until:
                    yield with_links(info)
        return
    clauses = [f"timestamp_ms < {until}"] + ([f"timestamp_ms >= {since}"] if since is not None else [])
    for experiment in ctx.experiments:
        if experiment.experiment_id in ctx.selection.full_experiment_ids:
            for info in ctx.source.traces(experiment.experiment_id, " AND ".join(clauses)):
                yield with_links(info)
        links.pop(experiment.experiment_id, None)


def _run_links(ctx: ExportContext, experiment_id: str) -> dict[str, list[str]]:
    """Trace ID -> exported runs it is linked to by entity association (no API lists those but this search).

    One search per exported run of the experiment, done only for experiments that hold traces.
    """
    def linked(run_id: str) -> tuple[str, list[str]]:
        infos = ctx.source.traces_of_run(experiment_id, run_id)
        return run_id, [i.trace_id for i in infos if i.trace_metadata.get(TraceMetadataKey.SOURCE_RUN) != run_id]

    links: dict[str, list[str]] = defaultdict(list)
    runs = ctx.source.runs([experiment_id], window_filter(ctx), ctx.options.export_deleted_runs)
    for run_id, trace_ids in ctx.ordered_map(linked, (run.info.run_id for run in runs)):
        for trace_id in trace_ids:
            links[trace_id].append(run_id)
    return links


def export(ctx: ExportContext) -> None:
    if ctx.options.no_traces:
        return
    pending: list[tuple[TraceInfo, list[str] | None, list[dict]]] = []
    size = with_attachments = 0
    for group in ctx.ordered_map(lambda selected: _read_group(ctx, selected), batches(_selected(ctx), SERVER_READ_BATCH)):
        for info, links, spans in group:
            pending.append((info, links, spans))
            with_attachments += any(ATTACHMENT_REF in r["attributes_json"] for r in spans)
            size += sum(len(r["attributes_json"]) + len(r["events_json"]) for r in spans)
            if len(pending) == PER_CHUNK or size >= CHUNK_SPAN_BYTES:
                _export_chunk(ctx, pending)
                pending, size = [], 0
    if pending:
        _export_chunk(ctx, pending)
    if with_attachments:
        seen = f"{with_attachments} trace(s) whose spans name files by {ATTACHMENT_REF} references, which stay behind"
        ctx.summary.leave_out(Uncarried("trace_attachments", seen))


def _spans_location(info: TraceInfo) -> str | None:
    return info.tags.get(TraceTagKey.SPANS_LOCATION)


def _read_group(ctx: ExportContext, selected: list[tuple]) -> list[tuple[TraceInfo, list[str] | None, list[dict]]]:
    """The traces with their links and span rows; a trace whose spans cannot be read counts as one failure."""
    server_read = [i.trace_id for i, _ in selected if _spans_location(i) in SERVER_READ]
    try:
        found = {t.info.trace_id: t for t in ctx.source.traces_with_spans(server_read)} if server_read else {}
    except Exception as exc:
        if server_trouble(exc):
            raise
        found = {}  # read one by one below, so that only the unreadable trace fails
    read = []
    for info, links in selected:
        try:
            trace = found.get(info.trace_id)
            if trace is None and _spans_location(info) in SERVER_READ:
                # Batch reads leave out traces without spans or with spans still missing.
                trace = ctx.source.trace_with_spans(info.trace_id)
            elif trace is None:
                # Read again for its assessments, which a search may leave out (2.x traces have none).
                whole = info if ctx.source.v2_traces else ctx.source.trace_info(info.trace_id)
                trace = Trace(whole, ctx.source.trace_artifact_data(info))
            # The info read with the spans, not the search result: it is the newer one.
            read.append((trace.info, links, [_span_row(info.trace_id, s) for s in trace.data.spans]))
        except Exception as exc:
            if server_trouble(exc):
                raise
            ctx.summary.fail("traces", f"spans of trace {info.trace_id} could not be read: {one_line(exc)}")
    return read



def _export_chunk(ctx: ExportContext, traces: list[tuple[TraceInfo, list[str] | None, list[dict]]]) -> None:
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table("traces", _columns("traces", [_trace_row(info, links) for info, links, _ in traces]))
    spans = [row for _, _, rows in traces for row in rows]
    chunk.write_table("spans", _columns("spans", spans))
    assessments = [
        _assessment_row(info.trace_id, a)
        for info, _, _ in traces
        for a in sorted(info.assessments, key=lambda a: (a.create_time_ms or 0, a.assessment_id))
    ]
    chunk.write_table("assessments", _columns("assessments", assessments))
    ctx.summary.add("traces", "exported", len(traces))
    ctx.summary.add("spans", "exported", len(spans))
    ctx.summary.add("assessments", "exported", len(assessments))
    ctx.progress.update("traces exported", ctx.summary.counts["traces"].exported, nbytes=ctx.writer.bytes_written)


def _trace_row(info: TraceInfo, linked_run_ids: list[str] | None) -> dict:
    return {
        "trace_id": info.trace_id,
        "experiment_id": info.experiment_id,
        "client_request_id": info.client_request_id,
        "request_time": info.request_time,
        "execution_duration": info.execution_duration,
        "state": TraceState(info.state).value,
        "request_preview": info.request_preview,
        "response_preview": info.response_preview,
        "trace_metadata": sorted_key_values(info.trace_metadata),
        "tags": sorted_key_values(info.tags),
        "linked_run_ids": linked_run_ids,
    }


def _span_row(trace_id: str, span: Span) -> dict:
    events = [{"name": e.name, "timestamp_ns": e.timestamp, "attributes": e.attributes} for e in span.events]
    links = [link.to_dict() for link in span.links]
    return {
        "trace_id": trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_id,
        "name": span.name,
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
        "status_code": span.status.status_code.value,
        "status_message": span.status.description or None,
        # The stored form: each value is its JSON text, exactly as the server keeps it.
        "attributes_json": json.dumps(dict(span._span.attributes), ensure_ascii=False),
        "events_json": json.dumps(events, ensure_ascii=False),
        "links_json": json.dumps(links, ensure_ascii=False) if links else None,
    }


def _columns(table: str, rows: list[dict]) -> dict[str, list]:
    return {name: [r[name] for r in rows] for name in TABLES[table].schema.names}


def _assessment_row(trace_id: str, a: Assessment) -> dict:
    if a.feedback is not None:
        kind, value = "feedback", a.feedback.value
        error = a.feedback.error.to_dictionary() if a.feedback.error else None
    elif a.expectation is not None:
        kind, value, error = "expectation", a.expectation.value, None
    else:
        kind, value, error = "issue", a.issue.to_dictionary(), None
    return {
        "trace_id": trace_id,
        "assessment_id": a.assessment_id,
        "name": a.name,
        "kind": kind,
        "value_json": json.dumps(value, ensure_ascii=False),
        "error_json": json.dumps(error, ensure_ascii=False) if error else None,
        "source_type": a.source.source_type,
        "source_id": a.source.source_id,
        "rationale": a.rationale,
        "span_id": a.span_id,
        "run_id": a.run_id,
        "create_time": a.create_time_ms,
        "last_update_time": a.last_update_time_ms,
        "overrides": a.overrides,
        "valid": a.valid,
        "metadata": sorted_key_values(a.metadata),
    }


# -- Import -------------------------------------------------------------------------------

def _otel_trace_id(trace_id: str) -> bytes:
    """The OpenTelemetry trace ID behind an MLflow trace ID (``tr-<32 hex>``, or a bare 32-hex request ID)."""
    hex_id = trace_id.removeprefix("tr-")
    try:
        if len(hex_id) == 32:
            return bytes.fromhex(hex_id)
    except ValueError:
        pass
    return hashlib.md5(trace_id.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _span(row: dict) -> Span:
    events = json.loads(row["events_json"])
    return Span.from_dict(
        {
            "trace_id": _b64(_otel_trace_id(row["trace_id"])),
            "span_id": _b64(bytes.fromhex(row["span_id"])),
            "parent_span_id": _b64(bytes.fromhex(row["parent_span_id"])) if row["parent_span_id"] else None,
            "name": row["name"],
            "start_time_unix_nano": row["start_time_ns"],
            "end_time_unix_nano": row["end_time_ns"],
            "events": [{"name": e["name"], "time_unix_nano": e["timestamp_ns"], "attributes": e["attributes"]} for e in events],
            "status": {
                "code": SpanStatusCode(row["status_code"]).to_otel_proto_status_code_name(),
                "message": row["status_message"] or "",
            },
            "attributes": json.loads(row["attributes_json"]),
            "links": [Link.from_dict(link).to_dict() for link in json.loads(row["links_json"] or "[]")],
        }
    )


class Importer(ChunkReplay):
    kind, object_type = "trace", "traces"

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        self.artifact_spans: dict[str, list[Span]] = defaultdict(list)  # traces whose spans go to traces.json
        self.unmapped_runs: set[str] = set()
        self.unlinked_prompts: set[str] = set()  # "name/version" the destination would not link

    def member(self, member: Member) -> None:
        table = member.read_table()
        if member.stem == "traces":
            self._begin(table)
            self.for_each(self._start_one, list(self.rows.items()))
        elif member.stem == "spans":
            self._spans(table)
        else:
            self._assessments(table)

    def _begin(self, table: pa.Table) -> None:
        """Keep the traces not yet on the destination; a partial one from an interrupted import is redone."""
        ctx = self.ctx
        ids = table["trace_id"].to_pylist()
        existing = {}
        for start in range(0, len(ids), SEARCH_BATCH):
            existing.update((i.trace_id, i) for i in ctx.dest.trace_infos(ids[start : start + SEARCH_BATCH]))
        for row in table.to_pylist():
            found = existing.get(row["trace_id"])
            if found is not None and found.tags.get(STATE_TAG) != PARTIAL:
                # Ours and complete, or a trace the destination already had under this ID.
                ctx.ids.put("trace", row["trace_id"], row["trace_id"], COMPLETE)
                ctx.summary.add("traces", "skipped")
                continue
            row["replaces"] = found.experiment_id if found is not None else None
            self.rows[row["trace_id"]] = row

    def _start_one(self, source_id: str, row: dict) -> None:
        ctx = self.ctx
        if row["replaces"]:
            ctx.dest.delete_traces(row["replaces"], [source_id])
        experiment_id = ctx.ids.dest("experiment", row["experiment_id"])
        if experiment_id is None:
            raise ArchiveError(f"trace {source_id} belongs to experiment {row['experiment_id']}, which was not imported")
        metadata = {m["key"]: m["value"] for m in row["trace_metadata"]}
        for key, kind in ((TraceMetadataKey.SOURCE_RUN, "run"), (TraceMetadataKey.MODEL_ID, "logged_model")):
            if metadata.get(key):
                metadata[key] = self._dest_id(kind, metadata[key])
        tags = {t["key"]: t["value"] for t in row["tags"] if not _derived_tag(t["key"])}
        location = tags.get(TraceTagKey.SPANS_LOCATION)
        row["to_artifact"] = location not in SERVER_READ
        if location == SpansLocation.ARCHIVE_REPO.value:
            # The destination's trace archive is the server's to fill: the spans go to its tracking store.
            tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        tags[STATE_TAG] = PARTIAL
        row["sent"] = trace_info_entity(row, experiment_id, metadata, tags)
        row["info"] = ctx.dest.start_trace(row["sent"])
        row["dest_id"] = source_id
        for run_id in row["linked_run_ids"] or ():
            dest_run = ctx.ids.dest("run", run_id)
            if dest_run is None:
                self.unmapped_runs.add(run_id)
            else:
                ctx.dest.link_traces_to_run([source_id], dest_run)
        self._link_prompts(source_id, tags.get(TraceTagKey.LINKED_PROMPTS))
        ctx.ids.put("trace", source_id, source_id, PARTIAL)

    def _link_prompts(self, trace_id: str, linked: str | None) -> None:
        """The association behind the trace's prompts tag (what a ``prompt = "name/version"`` search reads).

        Prompts keep their names and version numbers, so the tag needs no rewrite; a prompt version
        the destination does not have is noted, and the trace goes on.
        """
        try:
            entries = json.loads(linked) if linked else []
            versions = [PromptVersion(e["name"], int(e["version"]), template="") for e in entries]
        except (ValueError, TypeError, KeyError):
            self.unlinked_prompts.add(str(linked))
            return
        try:
            self.ctx.dest.link_prompts_to_trace(trace_id, versions)
        except MlflowException:
            self.unlinked_prompts.update(f"{v.name}/{v.version}" for v in versions)

    def _dest_id(self, kind: str, source_id: str) -> str:
        found = self.ctx.ids.dest(kind, source_id)
        if found is None and kind == "run":
            self.unmapped_runs.add(source_id)
        return found or source_id

    def _spans(self, table: pa.Table) -> None:
        by_experiment: dict[str, list[tuple[str, Span, int]]] = defaultdict(list)
        for row in table.to_pylist():
            source_id = row["trace_id"]
            if not self.live(source_id):
                continue
            try:
                span = _span(row)
            except Exception as exc:  # a span MLflow cannot rebuild fails its trace only
                self.failed.add(source_id)
                self.ctx.summary.fail("traces", f"span {row['span_id']} of trace {source_id}: {exc}")
                continue
            if self.rows[source_id]["to_artifact"]:
                self.artifact_spans[source_id].append(span)
            else:
                size = len(row["attributes_json"]) + len(row["events_json"])
                by_experiment[self.rows[source_id]["info"].experiment_id].append((source_id, span, size))
        batches = []
        for experiment_id, items in by_experiment.items():
            batch, size = [], 0
            for item in items:
                if batch and (len(batch) >= SPANS_PER_CALL or size + item[2] > SPAN_BYTES_PER_CALL):
                    batches.append((experiment_id, batch))
                    batch, size = [], 0
                batch.append(item)
                size += item[2]
            batches.append((experiment_id, batch))

        def log(batch: tuple[str, list]) -> None:
            experiment_id, items = batch
            try:
                self.ctx.dest.log_spans(experiment_id, [span for _, span, _ in items])
                self.ctx.summary.add("spans", "created", len(items))
            except Exception as exc:
                self.ctx.check_fatal(exc)
                for source_id in dict.fromkeys(source_id for source_id, _, _ in items):
                    if source_id not in self.failed:
                        self.failed.add(source_id)
                        self.ctx.summary.fail("traces", exc)

        for _ in self.ctx.ordered_map(log, batches):
            pass

    def _assessments(self, table: pa.Table) -> None:
        by_trace: dict[str, list[dict]] = defaultdict(list)
        for row in table.to_pylist():
            by_trace[row["trace_id"]].append(row)

        def create(source_id: str, rows: list[dict]) -> None:
            for row in rows:  # in order: an assessment comes after the one it overrides
                self.ctx.dest.create_assessment(self._assessment(row))
            self.ctx.summary.add("assessments", "created", len(rows))

        self.for_each(create, list(by_trace.items()))

    def _assessment(self, row: dict) -> Assessment:
        return assessment_entity(row, lambda run_id: self._dest_id("run", run_id))

    def end_chunk(self) -> None:
        artifact_spans, self.artifact_spans = self.artifact_spans, defaultdict(list)

        def finish(source_id: str, row: dict) -> None:
            if row["to_artifact"]:
                self.ctx.dest.upload_trace_data(row["info"], TraceData(spans=artifact_spans.get(source_id, [])))
                self.ctx.dest.set_trace_tag(source_id, STATE_TAG, COMPLETE)
            else:
                # log_spans recomputed the start time and duration from the spans (to the
                # millisecond); the source's values win, as they did when the trace was first logged.
                sent = row["sent"]
                self.ctx.dest.start_trace(replace(sent, tags={**sent.tags, STATE_TAG: COMPLETE}))
            self.ctx.ids.put("trace", source_id, source_id, COMPLETE)
            self.ctx.summary.add("traces", "created")

        self.for_each(finish, list(self.rows.items()))
        self.ctx.progress.update("traces imported", self.ctx.summary.counts["traces"].created)
        self.reset()

    def finish(self) -> None:
        if self.unlinked_prompts:
            self.ctx.summary.note(
                f"traces name {len(self.unlinked_prompts)} prompt version(s) the destination could not link "
                f"(e.g. {sorted(self.unlinked_prompts)[0]!r}): their mlflow.linkedPrompts tag is kept as it was"
            )
        if self.unmapped_runs:
            self.ctx.summary.note(
                f"traces or assessments name {len(self.unmapped_runs)} run(s) that are not in the archive: their "
                "metadata and run IDs keep the source run ID, and no link_traces_to_run link is made"
            )


def trace_info_entity(row: dict, experiment_id: str, metadata: dict[str, str], tags: dict[str, str]) -> TraceInfo:
    """The trace info of an archive row, in ``experiment_id``, with the given metadata and tags."""
    return TraceInfo(
        trace_id=row["trace_id"],
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=row["request_time"],
        state=TraceState(row["state"]),
        request_preview=row["request_preview"],
        response_preview=row["response_preview"],
        client_request_id=row["client_request_id"],
        execution_duration=row["execution_duration"],
        trace_metadata=metadata,
        tags=tags,
    )


def assessment_entity(row: dict, run_of: Callable[[str], str]) -> Assessment:
    """The assessment of an archive row, with its run IDs passed through ``run_of`` (source run ID -> destination's)."""
    metadata = {m["key"]: m["value"] for m in row["metadata"]} or None
    if metadata and metadata.get(AssessmentMetadataKey.SOURCE_RUN_ID):
        metadata[AssessmentMetadataKey.SOURCE_RUN_ID] = run_of(metadata[AssessmentMetadataKey.SOURCE_RUN_ID])
    return Assessment(
        name=row["name"],
        source=AssessmentSource(source_type=row["source_type"], source_id=row["source_id"]),
        trace_id=row["trace_id"],  # trace IDs are kept
        run_id=run_of(row["run_id"]) if row["run_id"] else None,
        rationale=row["rationale"],
        metadata=metadata,
        span_id=row["span_id"],
        create_time_ms=row["create_time"],
        last_update_time_ms=row["last_update_time"],
        assessment_id=row["assessment_id"],
        overrides=row["overrides"],
        valid=row["valid"],
        **_assessment_value(row),
    )


def _assessment_value(row: dict) -> dict:
    """The feedback, expectation or issue-reference field of an assessment row."""
    value = json.loads(row["value_json"]) if row["value_json"] is not None else None
    if row["kind"] == "feedback":
        error = AssessmentError.from_dictionary(json.loads(row["error_json"])) if row["error_json"] else None
        return {"feedback": FeedbackValue(value, error)}
    if row["kind"] == "expectation":
        return {"expectation": ExpectationValue(value)}
    return {"issue": IssueReferenceValue.from_dictionary(value)}


def _derived_tag(key: str) -> bool:
    """Tags the destination writes itself: ours, and the locations of the trace's own artifacts and of its archived
    spans (which name the source's storage: the spans go to the destination's tracking store)."""
    return key.startswith(PROVENANCE_PREFIX) or key in (MLFLOW_ARTIFACT_LOCATION, TraceTagKey.ARCHIVE_LOCATION)
