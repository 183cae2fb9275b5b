"""Runs: info, params, tags, full metric histories, dataset inputs and artifacts.

Export reads runs page by page and writes them in chunks of ``PER_CHUNK`` runs.
Import queues each run's writes on the worker pool as the chunk is read (create, ``log_batch`` calls
at their full limits, inputs, files, end status), so a chunk is written while the next one is read,
and marks each run complete with its last ``log_batch``, only once all of it is there:
a run left ``partial`` by an interrupted import is replaced by the next one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import Future

import pyarrow as pa
import pyarrow.compute as pc
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunTag,
)
from mlflow.tracking.context.default_context import _get_user
from mlflow.utils.mlflow_tags import (
    MLFLOW_LOGGED_MODELS,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_USER,
)

from ..archive import Member
from ..context import PROVENANCE_PREFIX, ExportContext, ImportContext
from ..errors import ArchiveError
from ..endpoints import BULK_HISTORY_POINTS, BULK_HISTORY_RUNS
from ..members import ARTIFACTS_EXT
from ._common import ABANDONED, COMPLETE, NATIVE, PARTIAL, ChunkReplay, batches, group_rows, pack_artifacts
from .experiments import EXISTING_EXPERIMENT, RUN_SOURCE_ID_TAG

SECTION = "runs"
PER_CHUNK = 100
METRICS_PER_CALL = 1000  # log_batch's limits (mlflow/utils/validation.py)
PARAMS_TAGS_PER_CALL = 100
ENTITIES_PER_CALL = 1000
STATE_TAG = PROVENANCE_PREFIX + "import_state"


# -- Export -------------------------------------------------------------------------------

def window_filter(ctx: ExportContext) -> str:
    """The search filter of the exported runs: the time window, and nothing at or after the cut-off."""
    clauses = []
    if ctx.options.run_start_time is not None:
        clauses.append(f"attributes.start_time >= {ctx.options.run_start_time}")
    until = ctx.cutoff_ms if ctx.options.runs_until is None else min(ctx.options.runs_until, ctx.cutoff_ms)
    clauses.append(f"attributes.start_time < {until}")
    return " AND ".join(clauses)


def _runs_by_id(ctx: ExportContext, experiment_id: str, run_ids: list[str]):
    for start in range(0, len(run_ids), 100):
        yield from ctx.source.runs_by_id([experiment_id], run_ids[start : start + 100], ctx.options.export_deleted_runs)


def running_at_cutoff(ctx: ExportContext) -> list[str]:
    full = sorted(ctx.selection.full_experiment_ids)
    running = window_filter(ctx) + " AND attributes.status = 'RUNNING'"
    found = []
    for start in range(0, len(full), 100):
        found += [r.info.run_id for r in ctx.source.runs(full[start : start + 100], running, ctx.options.export_deleted_runs)]
    for experiment_id, run_ids in ctx.selection.extra_runs.items():
        found += [r.info.run_id for r in _runs_by_id(ctx, experiment_id, sorted(run_ids)) if r.info.status == "RUNNING"]
    return found


def _selected_runs(ctx: ExportContext):
    for experiment in ctx.experiments:
        experiment_id = experiment.experiment_id
        if experiment_id in ctx.selection.full_experiment_ids:
            yield from ctx.source.runs([experiment_id], window_filter(ctx), ctx.options.export_deleted_runs)
        yield from _runs_by_id(ctx, experiment_id, sorted(ctx.selection.extra_runs.get(experiment_id, ())))


def export(ctx: ExportContext) -> None:
    with_models = _has_logged_models(ctx)
    for batch in batches(_selected_runs(ctx), PER_CHUNK):
        _export_chunk(ctx, batch, with_models)


def _has_logged_models(ctx: ExportContext) -> bool:
    """Whether the exported experiments hold a logged model, which a run may have taken as input."""
    if not ctx.source.has("logged_models"):
        return False
    ids = [e.experiment_id for e in ctx.experiments]
    return any(next(iter(ctx.source.logged_models(ids[i : i + 100])), None) for i in range(0, len(ids), 100))


def _model_inputs(ctx: ExportContext, runs: list[Run]) -> dict[str, list[str]]:
    """Each run's logged-model inputs, sorted: MLflow's run search leaves them out, so a REST source reads each run."""
    run_ids = [r.info.run_id for r in runs]
    found = ctx.source.model_inputs(run_ids)
    if found is None:
        found = dict(zip(run_ids, ctx.ordered_map(ctx.source.run_model_inputs, run_ids)))
    return {run_id: sorted(model_ids) for run_id, model_ids in found.items()}


def _kv_rows(runs: list[Run], attribute: str) -> dict[str, list]:
    rows = {"run_id": [], "key": [], "value": []}
    for run in runs:
        for key, value in getattr(run.data, attribute).items():
            rows["run_id"].append(run.info.run_id)
            rows["key"].append(key)
            rows["value"].append(value)
    return rows


def _history(ctx: ExportContext, run_key: tuple[str, str]) -> pa.Table:
    run_id, key = run_key
    return _history_table(run_id, key, [m for page in ctx.source.metric_history(run_id, key) for m in page])


def _history_table(run_id: str, key: str, points: list[Metric]) -> pa.Table:
    """One history as archive rows, sorted by step then timestamp (a stable sort keeps the server's order of ties)."""
    table = pa.table({
        "value": pa.array([m.value for m in points], pa.float64()),
        "timestamp": pa.array([m.timestamp for m in points], pa.int64()),
        "step": pa.array([m.step for m in points], pa.int64()),
    })
    return _history_rows(run_id, key, table.sort_by([("step", "ascending"), ("timestamp", "ascending")]))


def _history_rows(run_id: str, key: str, table: pa.Table) -> pa.Table:
    """A sorted history (value, timestamp, step) as archive rows."""
    n = table.num_rows
    return pa.table(
        {
            "run_id": pa.array([run_id] * n, pa.string()),
            "key": pa.array([key] * n, pa.string()),
            "value": table["value"],
            "timestamp": table["timestamp"],
            "step": table["step"],
        }
    )


def _bulk_groups(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """(key, runs) groups for bulk history reads: at most BULK_HISTORY_RUNS runs, and about BULK_HISTORY_POINTS
    points by the estimate ``latest step + 1`` (a wrong estimate costs a request, never a point)."""
    estimates: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for run in runs:
        for metric in run.data._metric_objs:  # the latest point of each key: the only place its step is given
            estimates[metric.key].append((run.info.run_id, min(max(metric.step + 1, 1), BULK_HISTORY_POINTS)))
    groups = []
    for key in sorted(estimates):
        group, points = [], 0
        for run_id, estimate in estimates[key]:
            if group and (len(group) == BULK_HISTORY_RUNS or points + estimate > BULK_HISTORY_POINTS):
                groups.append((key, group))
                group, points = [], 0
            group.append(run_id)
            points += estimate
        groups.append((key, group))
    return groups


def _metric_tables(ctx: ExportContext, runs: list[Run]):
    """Every history of the chunk's runs, run by run and key by key: read in bulk where the server can,
    each remaining history with the paged call; a database source reads them all at once."""
    whole = ctx.source.metric_histories([r.info.run_id for r in runs])
    if whole is not None:
        return (_history_rows(run_id, key, history) for run_id, key, history in whole)
    bulk: dict[tuple[str, str], pa.Table] = {}
    paged: set[tuple[str, str]] = set()
    groups = _bulk_groups(runs)
    for (key, _), (histories, rest) in zip(groups, ctx.ordered_map(lambda g: ctx.source.bulk_metric_histories(g[1], g[0]), groups)):
        bulk.update({(run_id, key): _history_table(run_id, key, points) for run_id, points in histories.items()})
        paged.update((run_id, key) for run_id in rest)
    keys = [(r.info.run_id, key) for r in runs for key in sorted(r.data.metrics)]
    return ctx.ordered_map(lambda rk: _history(ctx, rk) if rk in paged else bulk.pop(rk), keys)


def _export_chunk(ctx: ExportContext, runs: list[Run], with_models: bool) -> None:
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table(
        "runs",
        {
            "run_id": [r.info.run_id for r in runs],
            "experiment_id": [r.info.experiment_id for r in runs],
            "run_name": [r.info.run_name for r in runs],
            "user_id": [r.info.user_id for r in runs],
            "status": [r.info.status for r in runs],
            "start_time": [r.info.start_time for r in runs],
            "end_time": [r.info.end_time for r in runs],
            "lifecycle_stage": [r.info.lifecycle_stage for r in runs],
            "artifact_uri": [r.info.artifact_uri for r in runs],
        },
    )
    chunk.write_table("run_params", _kv_rows(runs, "params"))
    chunk.write_table("run_tags", _kv_rows(runs, "tags"))
    points = 0
    with chunk.table("run_metrics") as sink:
        for history in _metric_tables(ctx, runs):
            sink.append(history)
            points += history.num_rows
    chunk.write_table("run_inputs", _input_rows(runs))
    model_inputs = _model_inputs(ctx, runs) if with_models else {}
    for run in runs:
        for model_id in model_inputs.get(run.info.run_id, []):
            ctx.model_io.append((run.info.run_id, "input", model_id, None))
        for model_output in run.outputs.model_outputs if run.outputs else []:
            ctx.model_io.append((run.info.run_id, "output", model_output.model_id, model_output.step))
    pack_artifacts(
        ctx, chunk, runs, lambda run: run.info.run_id, lambda run, target: ctx.source.download_uri(run.info.artifact_uri, target)
    )
    ctx.summary.add("runs", "exported", len(runs))
    ctx.summary.add("metric_points", "exported", points)
    ctx.progress.update("runs exported", ctx.summary.counts["runs"].exported, nbytes=ctx.writer.bytes_written)


def _input_rows(runs: list[Run]) -> dict[str, list]:
    rows = defaultdict(list)
    for run in runs:
        for item in run.inputs.dataset_inputs if run.inputs else []:
            d = item.dataset
            rows["run_id"].append(run.info.run_id)
            rows["name"].append(d.name)
            rows["digest"].append(d.digest)
            rows["source_type"].append(d.source_type)
            rows["source"].append(d.source)
            rows["schema"].append(d.schema)
            rows["profile"].append(d.profile)
            rows["tags"].append([{"key": t.key, "value": t.value} for t in item.tags])
    return dict(rows) or {name: [] for name in ("run_id", "name", "digest", "source_type", "source", "schema", "profile", "tags")}


# -- Import -------------------------------------------------------------------------------

Batch = tuple[list[Param], list[tuple[str, str]], "pa.Table | None"]  # one log_batch: params, (key, value) tags, metric rows


def _log_batches(params: list[Param], tags: list[tuple[str, str]], metrics: pa.Table | None) -> list[Batch]:
    """Params, tags and metric rows cut into as few ``log_batch`` calls as the server's limits allow."""
    count = metrics.num_rows if metrics is not None else 0
    batches, start = [], 0
    while True:
        some_params, params = params[:PARAMS_TAGS_PER_CALL], params[PARAMS_TAGS_PER_CALL:]
        some_tags, tags = tags[:PARAMS_TAGS_PER_CALL], tags[PARAMS_TAGS_PER_CALL:]
        stop = min(count, start + min(METRICS_PER_CALL, ENTITIES_PER_CALL - len(some_params) - len(some_tags)))
        batches.append((some_params, some_tags, metrics.slice(start, stop - start) if stop > start else None))
        start = stop
        if not params and not tags and start >= count:
            return batches


def _has_room_for_a_tag(batch: Batch) -> bool:
    params, tags, metrics = batch
    entities = len(params) + len(tags) + (metrics.num_rows if metrics is not None else 0)
    return len(tags) < PARAMS_TAGS_PER_CALL and entities < ENTITIES_PER_CALL


class Importer(ChunkReplay):
    """Each run's writes are queued as they are read, one chunk ahead at most: a run is created, its params,
    tags and metrics go in full ``log_batch`` calls, then its files; its last ``log_batch`` is held back to go
    after everything else, with the end status set just before, and carries the ``complete`` marker."""

    kind, object_type = "run", "runs"

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        self.deferred_parents: list[tuple[str, str]] = []  # (destination run, source parent)
        self.abandoned: list[str] = []  # destination runs an interrupted import left partial, now deleted
        self.in_flight: list[str] = []  # runs of the previous chunk, whose writes may still be running

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            self.upload_artifacts(
                member, lambda source_id, local: self.ctx.dest.log_artifacts(self.rows[source_id]["dest_artifact_uri"], local),
                queued=True,
            )
            return
        table = member.read_table()
        if member.stem == "runs":
            self._index_native(table)
            self._note_restored_runs(table)
            first = len(self.current)
            self.begin(table, "run_id")
            for source_id in self.current[first:]:
                row = self.rows[source_id]
                # Params and tags wait for the run's metrics, to share log_batch calls with them.
                row.update(params=[], tags=[], held=None)
                self.create(source_id, self._create_one, row)
            return
        if member.stem == "run_metrics":
            self._log_metrics(table)
        elif member.stem == "run_inputs":
            self._log_all_inputs(table)
        else:
            for source_id, part in group_rows(table, "run_id").items():
                if source_id in self.rows:
                    pairs = zip(part["key"].to_pylist(), part["value"].to_pylist())
                    if member.stem == "run_params":
                        self.rows[source_id]["params"].extend(Param(k, v) for k, v in pairs)
                    else:
                        self.rows[source_id]["tags"].extend(pairs)  # resolved once the run exists

    def _index_native(self, table: pa.Table) -> None:
        """Record the chunk's runs that the destination holds under their own IDs (the archive came from this very
        server, or from a restore of it; run IDs are UUIDs, so an equal ID is the run): one search, and only in
        experiments this import found rather than created."""
        ids = self.ctx.ids
        found_here = {}  # source experiment -> its destination experiment, when this import found it there
        for experiment_id in set(table["experiment_id"].to_pylist()):
            dest_experiment = ids.dest("experiment", experiment_id)
            if dest_experiment and ids.get(EXISTING_EXPERIMENT, dest_experiment):
                found_here[experiment_id] = dest_experiment
        experiments, run_ids = set(), []
        for run_id, experiment_id in zip(table["run_id"].to_pylist(), table["experiment_id"].to_pylist()):
            if experiment_id in found_here and ids.get(self.kind, run_id) is None:
                experiments.add(found_here[experiment_id])
                run_ids.append(run_id)
        if run_ids:
            found = self.ctx.dest.runs_with_ids(sorted(experiments), run_ids)
            ids.put_many(self.kind, [(run.info.run_id, run.info.run_id, NATIVE) for run in found])

    def _note_restored_runs(self, table: pa.Table) -> None:
        """Name the deleted runs an earlier import completed that are active now. That import deleted each right after
        marking it complete (a deleted run takes no writes, so nothing records the deletion on the run): active now,
        the user restored it since, or that import stopped in between; either way the user's word stands."""
        for row in table.filter(pc.equal(table["lifecycle_stage"], LifecycleStage.DELETED)).to_pylist():
            known = self.ctx.ids.get(self.kind, row["run_id"])
            if not known or known[1] != COMPLETE:
                continue
            try:
                active = self.ctx.dest.run_lifecycle_stage(known[0]) == LifecycleStage.ACTIVE
            except Exception as exc:
                self.ctx.check_fatal(exc)
                self.ctx.summary.fail(self.object_type, exc)
                continue
            if active:
                self.ctx.summary.leave_alone(
                    f"run {known[0]} (source run {row['run_id']}) is deleted in the archive but active on the destination "
                    "(restored since an earlier import deleted it, or that import stopped before deleting it): left active"
                )

    def _create_one(self, source_id: str, row: dict) -> None:
        ctx = self.ctx
        if row["replaces"]:
            # Left partial by an interrupted import: its data cannot be trusted, so start over.
            ctx.dest.set_run_tag(row["replaces"], STATE_TAG, ABANDONED)
            ctx.dest.delete_run(row["replaces"])
            self.abandoned.append(row["replaces"])
        experiment_id = ctx.ids.dest("experiment", row["experiment_id"])
        if experiment_id is None:
            raise ArchiveError(f"run {source_id} belongs to experiment {row['experiment_id']}, which was not imported")
        tags = {RUN_SOURCE_ID_TAG: source_id, STATE_TAG: PARTIAL}
        user = row["user_id"] if ctx.options.use_src_user_id else _get_user()
        run = ctx.dest.create_run(experiment_id, row["start_time"], row["run_name"], tags, user)
        row["dest_id"], row["dest_artifact_uri"] = run.info.run_id, run.info.artifact_uri
        ctx.ids.put("run", source_id, row["dest_id"], PARTIAL)
        if row["artifact_uri"]:
            ctx.ids.put("run_location", row["artifact_uri"], run.info.artifact_uri)

    def _queue_batches(self, source_id: str, metrics: pa.Table | None) -> None:
        """Queue the run's waiting params and tags and these metric rows, holding the last call back."""
        row = self.rows[source_id]
        batches = _log_batches(row["params"], row["tags"], metrics)
        row["params"], row["tags"] = [], []
        if row["held"] is not None:
            batches.insert(0, row["held"])
        for batch in batches[:-1]:
            self.then(source_id, self._write, *batch, after=self._parents(batch))
        row["held"] = batches[-1]

    def _write(self, source_id: str, params: list[Param], tag_pairs: list[tuple[str, str]], part: pa.Table | None,
               marker: str | None = None) -> None:
        tags = self._tags(source_id, tag_pairs) + ([RunTag(STATE_TAG, marker)] if marker else [])
        metrics = []
        if part is not None:
            columns = (part[name].to_pylist() for name in ("key", "value", "timestamp", "step"))
            metrics = [Metric(*point) for point in zip(*columns)]
        if metrics or params or tags:
            self.ctx.dest.log_batch(self.dest(source_id), metrics=metrics, params=params, tags=tags)

    def _parents(self, batch: Batch) -> list[Future]:
        """The creations of parent runs queued with the tags of ``batch``: the parent's destination ID is known after."""
        return [self.created[value] for key, value in batch[1] if key == MLFLOW_PARENT_RUN_ID and value in self.created]

    def _tags(self, source_id: str, pairs: list[tuple[str, str]]) -> list[RunTag]:
        dest_id = self.dest(source_id)
        tags = []
        for key, value in pairs:
            if key.startswith(PROVENANCE_PREFIX) or key == MLFLOW_USER and not self.ctx.options.use_src_user_id:
                continue
            if key == MLFLOW_PARENT_RUN_ID:
                parent = self.ctx.ids.dest("run", value)
                if parent is None:
                    self.deferred_parents.append((dest_id, value))
                    continue
                value = parent
            elif key == MLFLOW_LOGGED_MODELS:
                value = _rewrite_run_ids(value, source_id, dest_id)
            tags.append(RunTag(key, value or ""))
        return tags

    def _log_metrics(self, table: pa.Table) -> None:
        for source_id, part in group_rows(table, "run_id").items():
            if source_id in self.rows:
                self._queue_batches(source_id, part)
        created = pc.sum(pc.is_in(table["run_id"], pa.array(list(self.rows), pa.string()))).as_py() or 0
        self.ctx.summary.add("metric_points", "created", created)
        self.ctx.summary.add("metric_points", "skipped", table.num_rows - created)  # runs an earlier import completed

    def _log_all_inputs(self, table: pa.Table) -> None:
        # The server adds a dataset to the experiment on its first use, and two runs adding the
        # same one at once collide: runs that bring a dataset first go one after another, the rest after them.
        first, rest, seen = [], [], set()
        for source_id, part in group_rows(table, "run_id").items():
            if source_id not in self.rows:
                continue
            experiment = self.rows[source_id]["experiment_id"]
            datasets = {(experiment, n, d) for n, d in zip(part["name"].to_pylist(), part["digest"].to_pylist())}
            if datasets - seen:
                first.append(self.then(source_id, self._log_inputs, part, after=first[-1:]))
            else:
                rest.append((source_id, part))
            seen |= datasets
        for source_id, part in rest:
            self.then(source_id, self._log_inputs, part, after=first)

    def _log_inputs(self, source_id: str, part: pa.Table) -> None:
        datasets = [
            DatasetInput(
                Dataset(r["name"], r["digest"], r["source_type"], r["source"], r["schema"], r["profile"]),
                [InputTag(t["key"], t["value"]) for t in r["tags"]],
            )
            for r in part.to_pylist()
        ]
        self.ctx.dest.log_inputs(self.dest(source_id), datasets)

    def _finish(self, source_id: str, row: dict, last: Batch) -> None:
        """After all else of the run: its end status, then its last log_batch with the ``complete`` marker."""
        ctx = self.ctx
        ctx.dest.finish_run(row["dest_id"], row["status"], row["end_time"])
        self._write(source_id, *last, marker=COMPLETE)
        if row["lifecycle_stage"] == LifecycleStage.DELETED:
            ctx.dest.delete_run(row["dest_id"])
        ctx.ids.put("run", source_id, row["dest_id"], COMPLETE)
        ctx.summary.add("runs", "created")

    def end_chunk(self) -> None:
        """Queue each run's last writes, then wait for the previous chunk's: reading the next chunk overlaps this one's."""
        for source_id in self.current:
            row = self.rows[source_id]
            if row["held"] is None or row["params"] or row["tags"] or not _has_room_for_a_tag(row["held"]):
                self._queue_batches(source_id, None)
            last = row.pop("held")
            self.close(source_id, self._finish, row, last, after=self._parents(last))
        self.drain(self.in_flight)
        self.in_flight, self.current = self.current, []
        counts = self.ctx.summary.counts.get("runs")  # none yet while the first chunk is being written
        self.ctx.progress.update("runs imported", counts.created if counts else 0)

    def finish(self) -> None:
        if self.abandoned:
            self.ctx.summary.note(
                f"{len(self.abandoned)} run(s) left partial by an interrupted import were deleted and imported again; "
                "their rows stay in the destination's database until `mlflow gc --backend-store-uri <its store URI>` purges them"
            )
        unresolved = 0
        for dest_id, source_parent in self.deferred_parents:
            parent = self.ctx.ids.dest("run", source_parent)
            try:
                self.ctx.dest.set_run_tag(dest_id, MLFLOW_PARENT_RUN_ID, parent or source_parent)
            except Exception as exc:
                self.ctx.check_fatal(exc)
                self.ctx.summary.fail("runs", exc)
            unresolved += parent is None
        if unresolved:
            self.ctx.summary.note(
                f"{unresolved} run(s) name a parent run that is not in the archive; their "
                f"{MLFLOW_PARENT_RUN_ID} keeps the source ID"
            )


def _rewrite_run_ids(history_json: str | None, source_id: str, dest_id: str) -> str | None:
    """``mlflow.log-model.history`` embeds the run ID in each entry: point it at the new run."""
    try:
        entries = json.loads(history_json or "")
    except ValueError:
        return history_json
    if not isinstance(entries, list):
        return history_json
    for entry in entries:
        if isinstance(entry, dict) and entry.get("run_id") == source_id:
            entry["run_id"] = dest_id
    return json.dumps(entries)
