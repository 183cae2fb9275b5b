"""GenAI evaluation datasets: name, tags, experiment links, and every record (SQL-backed stores only).

Export pages through each dataset's records, so a dataset of any size is never in memory
at once; the records go into the chunk's ``evaluation_dataset_records`` parts as they come.

Import creates each dataset under its name with its tags and its links to the destination's
copies of its experiments, then adds its records in the source's order. MLflow sets record and
dataset IDs, times, digest, schema and profile itself; a record's creator comes from its
``mlflow.user`` tag, as on the source. Records are added one creation time at a time, so the
destination's order (creation time, then record ID) follows the source's. A record that came
from a trace names the destination's copy of that trace.

Each dataset an import creates carries ``mlflow_archive.source_dataset_id`` and
``mlflow_archive.import_state``: a dataset left ``partial`` by an interrupted import is
replaced by the next run of the same command; a ``complete`` one is left alone.
"""

from __future__ import annotations

import json
import threading
from typing import Iterator

import pyarrow as pa
from mlflow.entities import DatasetRecord, EvaluationDataset

from ..archive import Member
from ..context import PROVENANCE_PREFIX, SOURCE_TAG_PREFIX, ExportContext, ExportOptions, ImportContext, selector_tokens
from ..endpoints import TrackingSource
from ..errors import ArchiveError
from ._common import COMPLETE, PARTIAL, ChunkReplay, batches, group_rows

SECTION = "evaluation_datasets"
RECORDS = "evaluation_dataset_records"
PER_CHUNK = 100
SOURCE_ID_TAG = PROVENANCE_PREFIX + "source_dataset_id"
STATE_TAG = PROVENANCE_PREFIX + "import_state"
RECORDS_PER_CALL = 1000
BYTES_PER_CALL = 8 << 20
TRACE_SOURCE = "TRACE"


# -- Selection ----------------------------------------------------------------------------

def takes_all(options: ExportOptions, everything: bool) -> bool:
    """Whether every dataset of the source is wanted, rather than those of the exported experiments."""
    if options.experiments is not None:
        return False
    if options.evaluation_datasets is None:
        return everything
    return options.evaluation_datasets.strip() == "all"


def named(source: TrackingSource, selector: str) -> Iterator[EvaluationDataset]:
    """The datasets with the names of ``--evaluation-datasets`` (names are not unique: all of each name)."""
    for name in dict.fromkeys(selector_tokens(selector)):
        found = False
        for dataset in source.evaluation_datasets(name=name):
            found = True
            yield dataset
        if not found:
            raise ArchiveError(f"No evaluation dataset named {name!r} on the source; check --evaluation-datasets.")


def dependency_experiments(source: TrackingSource, options: ExportOptions) -> Iterator[str]:
    """Experiments the datasets chosen by ``--evaluation-datasets`` are linked to, so that the links can be kept."""
    if options.no_evaluation_datasets or options.evaluation_datasets is None:
        return
    reason = source.evaluation_datasets_unsupported()
    if reason:
        raise ArchiveError(f"The source cannot list evaluation datasets ({reason}); leave out --evaluation-datasets.")
    if options.evaluation_datasets.strip() != "all":
        datasets = named(source, options.evaluation_datasets)
    elif options.experiments is None:
        datasets = source.evaluation_datasets()
    else:
        return
    for dataset in datasets:
        yield from source.dataset_experiment_ids(dataset.dataset_id)


# -- Export -------------------------------------------------------------------------------

def _selected(ctx: ExportContext) -> Iterator[EvaluationDataset]:
    """Each wanted dataset once, if it was created before the cut-off."""
    options = ctx.options
    if options.evaluation_datasets is not None and options.evaluation_datasets.strip() != "all":
        chosen = named(ctx.source, options.evaluation_datasets)
    elif takes_all(options, ctx.selection.everything):
        chosen = ctx.source.evaluation_datasets()
    else:
        chosen = _linked_to_exported(ctx)
    return (d for d in chosen if d.created_time is None or d.created_time < ctx.cutoff_ms)


def _linked_to_exported(ctx: ExportContext) -> Iterator[EvaluationDataset]:
    ids = [e.experiment_id for e in ctx.experiments]
    earlier: set[str] = set()
    for start in range(0, len(ids), 100):
        batch = ids[start : start + 100]
        for dataset in ctx.source.evaluation_datasets(experiment_ids=batch):
            # A dataset linked to experiments of several batches is exported with the first.
            if not earlier or not earlier.intersection(ctx.source.dataset_experiment_ids(dataset.dataset_id)):
                yield dataset
        earlier.update(batch)


def export(ctx: ExportContext) -> None:
    if ctx.options.no_evaluation_datasets:
        return
    reason = ctx.source.evaluation_datasets_unsupported()
    if reason:
        ctx.summary.note(f"the source store has no evaluation datasets ({reason}); none exported")
        return
    for batch in batches(_selected(ctx), PER_CHUNK):
        _export_chunk(ctx, batch)


def _kv(mapping: dict | None) -> list[dict]:
    return [{"key": k, "value": v if isinstance(v, str) or v is None else json.dumps(v)} for k, v in (mapping or {}).items()]


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _export_chunk(ctx: ExportContext, datasets: list[EvaluationDataset]) -> None:
    links = list(ctx.ordered_map(lambda d: ctx.source.dataset_experiment_ids(d.dataset_id), datasets))
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table(
        SECTION,
        {
            "dataset_id": [d.dataset_id for d in datasets],
            "name": [d.name for d in datasets],
            "digest": [d.digest for d in datasets],
            "created_time": [d.created_time for d in datasets],
            "last_update_time": [d.last_update_time for d in datasets],
            "created_by": [d.created_by for d in datasets],
            "last_updated_by": [d.last_updated_by for d in datasets],
            "schema_json": [d.schema for d in datasets],
            "profile_json": [d.profile for d in datasets],
            "experiment_ids": [list(ids) for ids in links],
            "tags": [_kv(d.tags) for d in datasets],
        },
    )
    ctx.summary.add(SECTION, "exported", len(datasets))
    with chunk.table(RECORDS) as sink:
        for dataset in datasets:
            try:
                for records in _records_before_cutoff(ctx, dataset.dataset_id):
                    sink.append(_record_rows(dataset.dataset_id, records))
                    ctx.summary.add(RECORDS, "exported", len(records))
            except Exception as exc:
                ctx.check_fatal(exc)
                ctx.summary.fail(SECTION, f"records of dataset {dataset.name!r} could not be read: {exc}")
    ctx.progress.update("evaluation datasets exported", ctx.summary.counts[SECTION].exported, nbytes=ctx.writer.bytes_written)


def _records_before_cutoff(ctx: ExportContext, dataset_id: str) -> Iterator[list[DatasetRecord]]:
    # Pages come in creation order: the first record created after the cut-off ends the dataset.
    for page in ctx.source.dataset_records(dataset_id):
        kept = [r for r in page if r.created_time is None or r.created_time < ctx.cutoff_ms]
        if kept:
            yield kept
        if len(kept) < len(page):
            return


def _record_rows(dataset_id: str, records: list[DatasetRecord]) -> dict[str, list]:
    return {
        "dataset_id": [dataset_id] * len(records),
        "record_id": [r.dataset_record_id for r in records],
        "inputs_json": [_json(r.inputs or {}) for r in records],
        "outputs_json": [_json(r.outputs) for r in records],
        "expectations_json": [_json(r.expectations) for r in records],
        "source_type": [r.source.source_type.value if r.source else None for r in records],
        "source_id": [r.source_id for r in records],
        "created_time": [r.created_time for r in records],
        "last_update_time": [r.last_update_time for r in records],
        "created_by": [r.created_by for r in records],
        "last_updated_by": [r.last_updated_by for r in records],
        "tags": [_kv(r.tags) for r in records],
        "source_data_json": [_json(r.source.source_data or {}) if r.source else None for r in records],
    }


# -- Import -------------------------------------------------------------------------------

def _source_tags(row: dict, id_column: str) -> dict[str, str]:
    keys = (id_column, "created_time", "last_update_time", "created_by", "last_updated_by")
    return {SOURCE_TAG_PREFIX + key: str(row[key]) for key in keys if row.get(key) is not None}


class Importer(ChunkReplay):
    kind, object_type = "evaluation_dataset", SECTION

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        self.unsupported: str | None = None
        self.checked = False
        self.not_stored = 0  # datasets a store without datasets could not take
        self.kept_existing: list[str] = []  # names that existed on the destination and were left as they were
        self.dropped_links: list[str] = []
        self._lock = threading.Lock()

    def live(self, source_id: str) -> bool:
        return super().live(source_id) and not self.rows[source_id].get("kept")

    def member(self, member: Member) -> None:
        if not self.checked:
            self.checked = True
            self.unsupported = self.ctx.dest.evaluation_datasets_unsupported()
        table = member.read_table()
        if self.unsupported:
            if member.stem == SECTION:
                self.not_stored += table.num_rows
            return
        if member.stem == SECTION:
            self.ctx.summary.add(SECTION, "created", 0)  # datasets before their records in the summary
            self.begin(table, "dataset_id")
            self.for_each(self._create_one, list(self.rows.items()))
        elif member.stem == RECORDS:
            self.for_each(self._add_records, list(group_rows(table, "dataset_id").items()))

    def _create_one(self, source_id: str, row: dict) -> None:
        ctx = self.ctx
        same_name = list(ctx.dest.evaluation_datasets(name=row["name"]))
        ours = [d for d in same_name if (d.tags or {}).get(SOURCE_ID_TAG) == source_id]
        theirs = [d for d in same_name if SOURCE_ID_TAG not in (d.tags or {})]
        replace = ours + theirs if ctx.options.delete_evaluation_dataset else ours
        if not ctx.options.delete_evaluation_dataset:
            done = next((d for d in ours if d.tags.get(STATE_TAG) == COMPLETE), None)
            if done is not None or (theirs and not ours):
                row["kept"] = True
                ctx.summary.add(SECTION, "skipped")
                if done is not None:
                    ctx.ids.put(self.kind, source_id, done.dataset_id, COMPLETE)
                else:
                    with self._lock:
                        self.kept_existing.append(row["name"])
                return
        for dataset in replace:  # with --delete-evaluation-dataset, or left partial by an interrupted import
            ctx.dest.delete_evaluation_dataset(dataset.dataset_id)
        experiment_ids = [ctx.ids.dest("experiment", e) for e in row["experiment_ids"]]
        if None in experiment_ids:
            with self._lock:
                self.dropped_links.append(row["name"])
        tags = {t["key"]: t["value"] for t in row["tags"] if not t["key"].startswith(PROVENANCE_PREFIX)}
        tags.update({SOURCE_ID_TAG: source_id, STATE_TAG: PARTIAL})
        if ctx.options.import_source_tags:
            tags.update(_source_tags(row, "dataset_id"))
            if row["digest"]:
                tags[SOURCE_TAG_PREFIX + "digest"] = row["digest"]
        created = ctx.dest.create_evaluation_dataset(row["name"], tags, [e for e in experiment_ids if e])
        row["dest_id"] = created.dataset_id
        ctx.ids.put(self.kind, source_id, created.dataset_id, PARTIAL)

    def _add_records(self, source_id: str, part: pa.Table) -> None:
        # One call per source creation time (and size limit), in order: each call gets a later
        # creation time on the destination, which keeps the source's order of the records.
        batch: list[dict] = []
        size = 0
        created_time = None
        for row in part.to_pylist():
            if batch and (row["created_time"] != created_time or len(batch) >= RECORDS_PER_CALL or size >= BYTES_PER_CALL):
                self._upsert(source_id, batch)
                batch, size = [], 0
            batch.append(self._record(row))
            size += sum(len(row[c] or "") for c in ("inputs_json", "outputs_json", "expectations_json"))
            created_time = row["created_time"]
        if batch:
            self._upsert(source_id, batch)

    def _upsert(self, source_id: str, records: list[dict]) -> None:
        self.ctx.dest.upsert_dataset_records(self.dest(source_id), records)
        self.ctx.summary.add(RECORDS, "created", len(records))
        self.ctx.progress.update("evaluation dataset records imported", self.ctx.summary.counts[RECORDS].created)

    def _record(self, row: dict) -> dict:
        tags = {t["key"]: t["value"] for t in row["tags"] if not t["key"].startswith(PROVENANCE_PREFIX)}
        if self.ctx.options.import_source_tags:
            tags.update(_source_tags(row, "record_id"))
        source = None
        if row["source_type"] is not None:
            data = json.loads(row["source_data_json"] or "{}")
            if row["source_type"] == TRACE_SOURCE and data.get("trace_id"):
                # Traces are imported before datasets and usually keep their IDs: the map may have none.
                data["trace_id"] = self.ctx.ids.dest("trace", data["trace_id"]) or data["trace_id"]
            source = {"source_type": row["source_type"], "source_data": data}
        return {
            "inputs": json.loads(row["inputs_json"]),
            "outputs": None if row["outputs_json"] is None else json.loads(row["outputs_json"]),
            "expectations": None if row["expectations_json"] is None else json.loads(row["expectations_json"]),
            "tags": tags,
            "source": source,
        }

    def end_chunk(self) -> None:
        def finish(source_id: str, row: dict) -> None:
            self.ctx.dest.set_evaluation_dataset_tags(row["dest_id"], {STATE_TAG: COMPLETE})
            self.ctx.ids.put(self.kind, source_id, row["dest_id"], COMPLETE)
            self.ctx.summary.add(SECTION, "created")

        self.for_each(finish, list(self.rows.items()))
        self.reset()

    def finish(self) -> None:
        summary = self.ctx.summary
        if self.not_stored:
            summary.fail(
                SECTION, f"the destination cannot store evaluation datasets, only SQL-backed stores can ({self.unsupported})",
                self.not_stored,
            )
        if self.kept_existing:
            summary.note(
                f"{len(self.kept_existing)} evaluation dataset(s) existed on the destination under the same name and were "
                f"left as they were (e.g. {self.kept_existing[0]!r}); --delete-evaluation-dataset replaces them"
            )
        if self.dropped_links:
            summary.note(
                f"{len(self.dropped_links)} evaluation dataset(s) lost links to experiments that are not in the archive "
                f"(e.g. {self.dropped_links[0]!r})"
            )
