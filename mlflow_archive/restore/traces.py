"""Traces with their IDs, request times, durations, states, previews, metadata and tags; spans; assessments.

Written through MLflow's own SQL store on the destination (``start_trace``, ``log_spans``), which
derives from the spans what MLflow keeps beside them (token and cost columns, span metrics, rollups).
Spans the source kept in its tracking store (or trace archive) go to the tracking store; spans it kept
as a ``traces.json`` artifact are written as that file again, where the trace's artifact location tag
points. A trace carries the tag ``mlflow_archive.import_state=partial`` until all of it is written and
the tag removed, so a restore killed midway deletes and redoes that trace when run again; a trace
already present without the tag is skipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import sqlalchemy as sa
from mlflow.entities import TraceData
from mlflow.entities.model_registry import PromptVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.tracking.dbmodels.models import SqlAssessments, SqlRun, SqlTraceInfo, SqlTraceTag
from mlflow.tracing.constant import SpansLocation, TraceTagKey
from mlflow.tracing.utils import TraceJSONEncoder
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION

from ..archive import Member
from ..database import ARTIFACTS_ROOT
from ..errors import ArchiveError, one_line
from ..objects._common import PARTIAL
from ..objects.traces import SERVER_READ, STATE_TAG, _derived_tag, _span, assessment_entity, trace_info_entity
from . import RestoreContext, conflict, database_id

SECTION = "traces"
TRACES, TAGS, ASSESSMENTS = SqlTraceInfo.__table__, SqlTraceTag.__table__, SqlAssessments.__table__
TRACE_DATA_FILE = "traces.json"  # MLflow's TRACE_DATA_FILE_NAME


def compared(row: dict) -> dict:
    """What names a trace: the same ID in another experiment or at another time is another trace."""
    return {"experiment_id": database_id(row["experiment_id"], f"Trace {row['trace_id']}"), "timestamp_ms": row["request_time"]}


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.traces: dict[str, dict] = {}  # trace ID -> archive row, for the traces this chunk writes
        self.spans: dict[str, list] = defaultdict(list)
        self.assessments: dict[str, list] = defaultdict(list)
        self.table_spans: set[str] = set()  # traces whose spans go to the tracking store
        self.skipped = 0

    def _plan(self, member: Member) -> tuple[list[dict], list[str]]:
        """(rows to write, IDs of traces a killed restore left partial); an ID taken by another trace refuses."""
        rows = member.read_table().to_pylist()
        ids = [r["trace_id"] for r in rows]
        present = self.ctx.db.fetch(TRACES, "request_id", ids)
        partial = set()
        if present:  # a trace a killed restore left partial is present too
            with self.ctx.db.engine.connect() as conn:
                partial = set(conn.execute(sa.select(TAGS.c.request_id).where(TAGS.c.key == STATE_TAG, TAGS.c.request_id.in_(ids)))
                              .scalars())
        new = []
        for row in rows:
            have, want = present.get(row["trace_id"]), compared(row)
            if have is None or row["trace_id"] in partial:
                new.append(row)
            elif any(have[k] != v for k, v in want.items()):
                raise ArchiveError(conflict(f"trace {row['trace_id']}", want, dict(have)))
        return new, [i for i in ids if i in partial]

    def check(self, member: Member) -> None:
        if member.stem == "traces":
            self._plan(member)

    def member(self, member: Member) -> None:
        if member.stem == "traces":
            new, partial = self._plan(member)
            self.skipped = member.info.rows - len(new)
            self.traces = {r["trace_id"]: r for r in new}
            for trace_id in partial:
                self.ctx.store().delete_traces(self.traces[trace_id]["experiment_id"], trace_ids=[trace_id])
            return
        target = self.spans if member.stem == "spans" else self.assessments
        for row in member.read_table().to_pylist():
            if row["trace_id"] in self.traces:
                target[row["trace_id"]].append(row)

    def _info(self, row: dict, assessments: list[dict]):
        tags = {t["key"]: t["value"] for t in row["tags"] if not _derived_tag(t["key"])}
        if tags.get(TraceTagKey.SPANS_LOCATION) == SpansLocation.ARCHIVE_REPO.value:
            # The destination's trace archive is its server's to fill: the spans go to its tracking store.
            tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        info = trace_info_entity(row, row["experiment_id"], {m["key"]: m["value"] for m in row["trace_metadata"]},
                                 {**tags, STATE_TAG: PARTIAL})
        return replace(info, assessments=[assessment_entity(a, lambda run_id: run_id) for a in assessments])

    def _guarded(self, trace_ids: list[str], work, *args) -> bool:
        """``work(*args)``; when MLflow refuses it, each of the traces is one failure and is deleted again."""
        try:
            work(*args)
            return True
        except (MlflowException, ValueError, KeyError, TypeError) as exc:
            for trace_id in trace_ids:
                row = self.traces.pop(trace_id, None)
                if row is not None:
                    self.ctx.summary.fail("traces", f"trace {trace_id}: {one_line(exc)}")
                    self.ctx.store().delete_traces(row["experiment_id"], trace_ids=[trace_id])
            return False

    def _start(self, trace_id: str) -> None:
        """The trace info with its assessments, marked partial; spans kept as ``traces.json`` are written as that file."""
        info = self._info(self.traces[trace_id], self.assessments.get(trace_id, []))
        self.ctx.store().start_trace(info)
        if info.tags.get(TraceTagKey.SPANS_LOCATION) not in SERVER_READ:
            self._write_trace_data(trace_id, TraceData(spans=[_span(s) for s in self.spans.get(trace_id, [])]))
            self.table_spans.discard(trace_id)

    def _log_spans(self, experiment_id: str, trace_ids: list[str]) -> None:
        self.ctx.store().log_spans(experiment_id, [_span(s) for t in trace_ids for s in self.spans.get(t, [])])

    def _link(self, trace_id: str, runs: set[str]) -> None:
        row, store = self.traces[trace_id], self.ctx.store()
        for run_id in row["linked_run_ids"] or ():
            if run_id in runs:
                store.link_traces_to_run([trace_id], run_id)
        linked = next((t["value"] for t in row["tags"] if t["key"] == TraceTagKey.LINKED_PROMPTS), None)
        if linked:
            store.link_prompts_to_trace(trace_id, [PromptVersion(e["name"], int(e["version"]), template="")
                                                   for e in json.loads(linked)])

    def _write_trace_data(self, trace_id: str, data: TraceData) -> None:
        """``traces.json`` where the trace's artifact location tag (which start_trace set) points."""
        location = self.ctx.store().get_trace_info(trace_id).tags[MLFLOW_ARTIFACT_LOCATION]
        text = json.dumps(data.to_dict(), cls=TraceJSONEncoder, ensure_ascii=False)
        if location.startswith(ARTIFACTS_ROOT):
            folder = self.ctx.artifacts.joinpath(*location.removeprefix(ARTIFACTS_ROOT).split("/"))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / TRACE_DATA_FILE).write_text(text, encoding="utf-8")
        else:  # an experiment the destination had before, with an artifact root of its own
            get_artifact_repository(location).upload_trace_data(text)

    def end_chunk(self) -> None:
        """Each trace started (marked partial), the spans of the chunk's traces in one log_spans per experiment, the
        links, then one transaction puts back what log_spans recomputed and marks them whole: so a killed restore
        leaves only partial traces behind."""
        self.table_spans = set(self.traces)
        for trace_id in list(self.traces):
            self._guarded([trace_id], self._start, trace_id)
        by_experiment: dict[str, list[str]] = defaultdict(list)
        for trace_id in self.table_spans & set(self.traces):
            by_experiment[self.traces[trace_id]["experiment_id"]].append(trace_id)
        for experiment_id, trace_ids in by_experiment.items():
            if not self._guarded([], self._log_spans, experiment_id, trace_ids):  # find the trace MLflow refuses
                for trace_id in trace_ids:
                    self._guarded([trace_id], self._log_spans, experiment_id, [trace_id])
        linked = {run_id for row in self.traces.values() for run_id in row["linked_run_ids"] or ()}
        runs = set(self.ctx.db.fetch(SqlRun.__table__, "run_uuid", linked))
        for trace_id in list(self.traces):
            self._guarded([trace_id], self._link, trace_id, runs)
        overridden = [a["assessment_id"] for t in self.traces for a in self.assessments.get(t, []) if a["valid"] is False]
        with self.ctx.db.begin() as conn:
            if self.table_spans & set(self.traces):
                # log_spans recomputed these from the spans; the source's values win, as they did on the source.
                conn.execute(TRACES.update().where(TRACES.c.request_id == sa.bindparam("trace_id")).values(
                    timestamp_ms=sa.bindparam("request_time"), execution_time_ms=sa.bindparam("execution_duration"),
                    status=sa.bindparam("state"), request_preview=sa.bindparam("request_preview"),
                    response_preview=sa.bindparam("response_preview"),
                ), [self.traces[t] for t in self.table_spans & set(self.traces)])
            # start_trace stores every assessment valid, as a new one is.
            conn.execute(ASSESSMENTS.update().where(ASSESSMENTS.c.assessment_id.in_(overridden)).values(valid=False))
            conn.execute(TAGS.delete().where(TAGS.c.key == STATE_TAG, TAGS.c.request_id.in_(list(self.traces))))
        self.ctx.summary.add("traces", "created", len(self.traces))
        self.ctx.summary.add("spans", "created", sum(len(self.spans.get(t, [])) for t in self.traces))
        self.ctx.summary.add("assessments", "created", sum(len(self.assessments.get(t, [])) for t in self.traces))
        self.ctx.summary.add("traces", "skipped", self.skipped)
        self.ctx.progress.update("traces restored", self.ctx.summary.counts["traces"].created)
        self._reset()
