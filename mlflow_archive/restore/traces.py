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
from . import RestoreContext, conflict

SECTION = "traces"
TRACES, ASSESSMENTS = SqlTraceInfo.__table__, SqlAssessments.__table__
TRACE_DATA_FILE = "traces.json"  # MLflow's TRACE_DATA_FILE_NAME


def compared(row: dict) -> dict:
    """What names a trace: the same ID in another experiment or at another time is another trace."""
    return {"experiment_id": int(row["experiment_id"]), "timestamp_ms": row["request_time"]}


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self._reset()

    def _reset(self) -> None:
        self.traces: dict[str, dict] = {}  # trace ID -> archive row, for the traces this chunk writes
        self.spans: dict[str, list] = defaultdict(list)
        self.assessments: dict[str, list] = defaultdict(list)
        self.skipped = 0

    def _plan(self, member: Member) -> tuple[list[dict], list[str]]:
        """(rows to write, IDs of traces a killed restore left partial); an ID taken by another trace refuses."""
        rows = member.read_table().to_pylist()
        ids = [r["trace_id"] for r in rows]
        present = self.ctx.db.fetch(TRACES, "request_id", ids)
        with self.ctx.db.engine.connect() as conn:
            partial = set(conn.execute(sa.select(SqlTraceTag.__table__.c.request_id).where(
                SqlTraceTag.__table__.c.key == STATE_TAG, SqlTraceTag.__table__.c.request_id.in_(ids))).scalars())
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

    def _write(self, row: dict, runs: set[str]) -> None:
        store, trace_id = self.ctx.store(), row["trace_id"]
        spans = [_span(s) for s in self.spans.get(trace_id, [])]
        info = self._info(row, self.assessments.get(trace_id, []))
        if info.tags.get(TraceTagKey.SPANS_LOCATION) in SERVER_READ:
            store.start_trace(replace(info, assessments=[]))
            store.log_spans(row["experiment_id"], spans)
            # log_spans recomputed the duration from the spans; the source's values win, as on the source.
            store.start_trace(info)
        else:
            store.start_trace(info)
            self._write_trace_data(trace_id, TraceData(spans=spans))
        overridden = [a.assessment_id for a in info.assessments if a.valid is False]
        if overridden:  # start_trace stores every assessment valid, as a new one is
            with self.ctx.db.begin() as conn:
                conn.execute(ASSESSMENTS.update().where(ASSESSMENTS.c.assessment_id.in_(overridden)).values(valid=False))
        for run_id in row["linked_run_ids"] or ():
            if run_id in runs:
                store.link_traces_to_run([trace_id], run_id)
        linked = info.tags.get(TraceTagKey.LINKED_PROMPTS)
        if linked:
            store.link_prompts_to_trace(trace_id, [PromptVersion(e["name"], int(e["version"]), template="")
                                                   for e in json.loads(linked)])
        store.delete_trace_tag(trace_id, STATE_TAG)
        self.ctx.summary.add("spans", "created", len(spans))
        self.ctx.summary.add("assessments", "created", len(info.assessments))
        self.ctx.summary.add("traces", "created")

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
        linked = {run_id for row in self.traces.values() for run_id in row["linked_run_ids"] or ()}
        runs = set(self.ctx.db.fetch(SqlRun.__table__, "run_uuid", linked))
        for trace_id, row in self.traces.items():
            try:
                self._write(row, runs)
            except (MlflowException, ValueError, KeyError, TypeError) as exc:  # MLflow refused it: one failure
                self.ctx.summary.fail("traces", f"trace {trace_id}: {one_line(exc)}")
                self.ctx.store().delete_traces(row["experiment_id"], trace_ids=[trace_id])
        self.ctx.summary.add("traces", "skipped", self.skipped)
        self.ctx.progress.update("traces restored", self.ctx.summary.counts["traces"].created)
        self._reset()
