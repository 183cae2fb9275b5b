"""What the object-type modules share: packing owners' files, and replaying a chunk of owned objects."""

from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
import threading
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import pyarrow as pa
from mlflow.entities import LifecycleStage
import pyarrow.compute as pc

from ..archive import Chunk, Member
from ..context import ExportContext, ImportContext
from ..endpoints import server_trouble
from ..errors import DamagedArchiveError, one_line
from ..members import check_artifact_path, extract_file
from ..schemas import TABLES

T = TypeVar("T")
COMPLETE, PARTIAL, ABANDONED = "complete", "partial", "abandoned"
# The destination holds the object under the archive's own ID (the archive came from this server, or from a
# restore of it): never written again, and never deleted again like an object an import completed.
NATIVE = "native"


def key_values(mapping: dict | None) -> list[dict]:
    """A string map as the archive's ``key_value`` list, in the source's order."""
    return [{"key": k, "value": v} for k, v in (mapping or {}).items()]


def sorted_key_values(mapping: dict | None) -> list[dict]:
    """A map that MLflow's REST API gives in no defined order (a protobuf map: trace tags and metadata) as the
    archive's ``key_value`` list sorted by key, so a database export and a REST export write the same bytes."""
    return key_values(dict(sorted((mapping or {}).items())))


def pack_artifacts(
    ctx: ExportContext, chunk: Chunk, objects: list[T], owner: Callable[[T], str], download: Callable[[T, Path], Path]
) -> None:
    """Download each object's files (concurrently) and add them to the chunk as ``<owner>/<path>``.

    An object whose files cannot be read (a location this machine cannot reach, a bucket gone, no credentials) is
    left without files and counted as failed, so one lost location does not stop a whole server's export; a
    server that keeps failing still ends it.
    """
    workdir = ctx.workdir / chunk.section

    def fetch(obj: T) -> Path | None:
        target = workdir / owner(obj)
        target.mkdir(parents=True)
        try:
            return download(obj, target)
        except Exception as exc:
            if server_trouble(exc):
                raise
            shutil.rmtree(target, ignore_errors=True)  # all of an object's files or none
            ctx.summary.fail("artifact_files", f"the files of {chunk.section}/{owner(obj)} were left out: {one_line(exc)}")
            return None

    with chunk.artifacts() as sink:
        for obj, local in zip(objects, ctx.ordered_map(fetch, objects)):
            if local is None:
                continue
            added = 0
            for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()):
                archive_path = f"{owner(obj)}/{path.relative_to(local).as_posix()}"
                try:
                    check_artifact_path(archive_path)
                except DamagedArchiveError:
                    ctx.summary.fail("artifact_files", f"file {archive_path!r} has a name the format refuses (e.g. a backslash)")
                    continue
                sink.add(archive_path, path)
                added += 1
            if added:
                ctx.summary.add("artifact_files", "exported", added)
    shutil.rmtree(workdir, ignore_errors=True)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), so only one batch is in memory."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def create_unless_present(ctx: ImportContext, kind: str, what: str, existing: list, same: Callable[[object], bool],
                          create: Callable[[], object]) -> None:
    """Create ``what`` unless the destination holds it: one of ``existing`` that is the ``same`` is present; another is
    the destination's own, left as it is (a note says so)."""
    if existing:
        ctx.summary.add(kind, "skipped")
        if not any(same(e) for e in existing):
            ctx.summary.note(f"{what} exists on the destination with other settings; left as it is")
        return
    try:
        create()
        ctx.summary.add(kind, "created")
    except Exception as exc:
        ctx.check_fatal(exc)
        ctx.summary.fail(kind, f"{what}: {one_line(exc)}")


EXPERIMENTS_PER_CHUNK = 100  # experiments whose objects of a kind go in one chunk


def table_columns(table: str, rows: list[dict]) -> dict[str, list]:
    """Rows as the columns of an archive table (each row holds every column, and may hold more)."""
    return {name: [r[name] for r in rows] for name in TABLES[table].schema.names}


def experiments_read(ctx: ExportContext, reads_deleted: bool, kind: str) -> list:
    """The exported experiments whose objects of ``kind`` the source can read: every one from a source that reads
    deleted experiments' (a database), else the active ones (MLflow's API does not list a deleted experiment's), with a
    note counting the others."""
    if reads_deleted:
        return ctx.experiments
    active = [e for e in ctx.experiments if e.lifecycle_stage == LifecycleStage.ACTIVE]
    if len(active) < len(ctx.experiments):
        ctx.summary.note(
            f"{len(ctx.experiments) - len(active)} deleted experiment(s) were exported without their {kind}, if they "
            f"have any: MLflow's API does not list a deleted experiment's {kind} (an export from the database carries them)"
        )
    return active


def export_by_experiment(ctx: ExportContext, section: str, experiments: list, unsupported: Callable[[str], str | None],
                         records: Callable[[list[str]], list[dict]], tables: dict[str, Callable[[list[dict]], list[dict]]]) -> None:
    """Export a kind whose objects belong to experiments: the ``records`` of a batch of these experiments make one
    chunk, each of ``tables`` written from its rows of them. A source whose store cannot hold the kind (asked of
    the first experiment: ``unsupported``) exports none, and a note says why."""
    if not experiments:
        return
    reason = unsupported(experiments[0].experiment_id)
    if reason:
        ctx.summary.note(f"the source store has no {section.replace('_', ' ')} ({reason}); none exported")
        return
    for batch in batches((e.experiment_id for e in experiments), EXPERIMENTS_PER_CHUNK):
        found = records(batch)
        if not found:
            continue
        chunk = ctx.writer.chunk(section)
        for table, rows_of in tables.items():
            rows = rows_of(found)
            if rows:
                chunk.write_table(table, table_columns(table, rows))
                ctx.summary.add(table, "exported", len(rows))


class ExperimentKindImporter:
    """Imports a section whose objects belong to experiments, a chunk at a time: subclasses name ``SECTION``, ask
    the destination whether it holds the kind (``unsupported_in``) and import a chunk's rows (``import_chunk``)."""

    SECTION = ""

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.tables: dict[str, list[dict]] = {}  # the current chunk's rows, by table
        self.unsupported: str | None = None
        self.checked = False

    def member(self, member: Member) -> None:
        self.tables[member.stem] = member.read_table().to_pylist()

    def end_chunk(self) -> None:
        tables, self.tables = self.tables, {}
        rows = tables.get(self.SECTION, [])
        if rows and self._supported(rows):
            self.import_chunk(rows, tables)

    def _supported(self, rows: list[dict]) -> bool:
        """Whether the destination's store holds the kind, asked once of an experiment this import has there."""
        if not self.checked:
            experiment_id = next(filter(None, (self.ctx.ids.dest("experiment", r["experiment_id"]) for r in rows)), None)
            if experiment_id is not None:
                self.checked = True
                self.unsupported = self.unsupported_in(experiment_id)
        if self.unsupported:
            kind = self.SECTION.replace("_", " ")
            self.ctx.summary.skip_kind(self.SECTION, f"the destination has no {kind} ({self.unsupported}); {len(rows)} not imported")
        return not self.unsupported

    def experiment(self, row: dict, what: str) -> str | None:
        """The destination's copy of the row's experiment; None, counted as failed, when it was not imported."""
        experiment_id = self.ctx.ids.dest("experiment", row["experiment_id"])
        if experiment_id is None:
            self.ctx.summary.fail(self.SECTION, f"{what}: its experiment {row['experiment_id']} was not imported")
        return experiment_id

    def unsupported_in(self, experiment_id: str) -> str | None:
        raise NotImplementedError

    def import_chunk(self, rows: list[dict], tables: dict[str, list[dict]]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


def group_rows(table: pa.Table, column: str) -> dict[str, pa.Table]:
    """Split a table into per-object slices by ``column`` (writers write an object's rows contiguously)."""
    if table.num_rows == 0:
        return {}
    ids = table[column].combine_chunks()
    boundaries = pc.not_equal(ids[1:], ids[:-1]) if len(ids) > 1 else pa.array([], pa.bool_())
    starts = [0] + [i + 1 for i, b in enumerate(boundaries.to_pylist()) if b]
    out: dict[str, list[pa.Table]] = defaultdict(list)
    for start, end in zip(starts, starts[1:] + [table.num_rows]):
        out[ids[start].as_py()].append(table.slice(start, end - start))
    return {object_id: pa.concat_tables(parts) for object_id, parts in out.items()}


def when_done(futures: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback`` once every one of ``futures`` is done (at once if they all are)."""
    left, lock = [len(futures) + 1], threading.Lock()

    def one(_=None) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            callback()

    for future in futures:
        future.add_done_callback(one)
    one()


class ChunkReplay:
    """The objects of one chunk that an import creates, keyed by source ID.

    ``begin`` keeps the rows neither imported (complete) by an earlier run of the same
    import nor present under their own IDs (native); ``for_each`` applies work to them
    concurrently, and a failure marks only that object failed, so the rest of the chunk goes on.

    ``create``, ``then`` and ``close`` queue an object's work instead, without waiting, so an importer can
    leave a chunk's writes running while it reads the next chunk; ``drain`` waits for them. A queued task
    runs once what it depends on is done (the object's creation; for ``close``, all its other work), and
    free workers take the ready task of the earliest object first: each object is finished soon after it
    is started, and one object's small requests overlap another's large ones.
    """

    kind: str  # the IdMap kind, e.g. "run"
    object_type: str  # the summary's name, e.g. "runs"

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.rows: dict[str, dict] = {}
        self.failed: set[str] = set()
        self.current: list[str] = []  # the source IDs ``begin`` kept from the chunk being read
        self.created: dict[str, Future] = {}  # queued objects: done once the creation was tried
        self.work: dict[str, list[Future]] = {}  # queued objects: their other work
        self.closed: dict[str, Future] = {}  # queued objects: done once their last work ran
        self.order: dict[str, int] = {}  # queued objects: their place in the archive
        self.fatal: BaseException | None = None  # the server failed for good: queued work is dropped
        self._ready: list[tuple[int, int, Callable]] = []  # a heap, by (object's place, queueing order)
        self._queued = itertools.count()
        self._lock = threading.Lock()

    def begin(self, table: pa.Table, id_column: str) -> None:
        for row in table.to_pylist():
            known = self.ctx.ids.get(self.kind, row[id_column])
            if known and known[1] in (COMPLETE, NATIVE):
                self.ctx.summary.add(self.object_type, "skipped")
                continue
            row["replaces"] = known[0] if known else None
            self.rows[row[id_column]] = row
            self.current.append(row[id_column])

    def live(self, source_id: str) -> bool:
        return source_id in self.rows and source_id not in self.failed

    def dest(self, source_id: str) -> str:
        return self.rows[source_id]["dest_id"]

    def _guarded(self, work: Callable, source_id: str, *rest) -> None:
        """``work(source_id, *rest)`` unless the object failed already; a failure fails that object only."""
        if self.fatal is not None or not self.live(source_id):
            return
        try:
            work(source_id, *rest)
        except Exception as exc:
            self.ctx.check_fatal(exc)
            if source_id not in self.failed:
                self.failed.add(source_id)
                self.ctx.summary.fail(self.object_type, exc)

    def for_each(self, work: Callable, items: Iterable[tuple]) -> None:
        """Apply ``work(source_id, *rest)`` to each item concurrently; a failure fails that object only."""
        for _ in self.ctx.ordered_map(lambda item: self._guarded(work, *item), items):
            pass

    def _queue(self, source_id: str, after: list[Future], work: Callable, rest: tuple) -> Future:
        done: Future = Future()

        def run() -> None:
            try:
                self._guarded(work, source_id, *rest)
            except Exception as exc:  # the server failed for good: what is still queued is dropped
                self.fatal = self.fatal or exc
            done.set_result(None)

        def ready() -> None:
            with self._lock:
                heapq.heappush(self._ready, (self.order[source_id], next(self._queued), run))
            try:
                self.ctx.pool.submit(self._run_next)
            except RuntimeError:  # the pool is shut: the import is ending on an error, and the object stays partial
                pass

        when_done(after, ready)
        return done

    def _run_next(self) -> None:
        with self._lock:
            run = heapq.heappop(self._ready)[2]
        run()

    def create(self, source_id: str, work: Callable, *rest) -> None:
        """Queue the work that creates the object: ``work(source_id, *rest)``."""
        self.raise_fatal()
        self.order[source_id] = next(self._queued)
        self.work[source_id] = []
        self.created[source_id] = self._queue(source_id, [], work, rest)

    def then(self, source_id: str, work: Callable, *rest, after: Iterable[Future] = ()) -> Future:
        """Queue ``work(source_id, *rest)`` to run once the object was created and ``after`` are done."""
        future = self._queue(source_id, [self.created[source_id], *after], work, rest)
        self.work[source_id].append(future)
        return future

    def close(self, source_id: str, work: Callable, *rest, after: Iterable[Future] = ()) -> None:
        """Queue the object's last work, to run once all its other work and ``after`` are done."""
        after = [self.created[source_id], *self.work.pop(source_id), *after]
        self.closed[source_id] = self._queue(source_id, after, work, rest)

    def drain(self, source_ids: Iterable[str] | None = None) -> None:
        """Wait for the queued work of these closed objects (default: all), then forget them."""
        for source_id in list(self.closed if source_ids is None else source_ids):
            closed = self.closed.pop(source_id, None)
            if closed is not None:
                closed.result()
            for done in (self.created, self.order, self.rows):
                done.pop(source_id, None)
            self.failed.discard(source_id)
        self.raise_fatal()

    def raise_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    def upload_artifacts(self, member: Member, upload: Callable[[str, Path], None], queued: bool = False) -> None:
        """Extract the files of live objects, then ``upload(source_id, folder)`` each; counts them as ``artifact_files``.

        Files of objects an earlier import completed count as already present.
        ``queued``: the uploads are queued with ``then`` (each removes its folder when done) instead of waited for.
        """
        root = Path(tempfile.mkdtemp(prefix=member.section, dir=self.ctx.workdir))
        files = present = 0
        for path, data in member.iter_artifacts():
            source_id, _, relative = path.partition("/")
            if relative and self.live(source_id):  # a path naming no file of an owner is ignored (FORMAT.md 6.4)
                extract_file(data, root / source_id, relative)
                files += 1
            elif source_id not in self.rows:
                present += 1
        self.ctx.summary.add("artifact_files", "created", files)
        self.ctx.summary.add("artifact_files", "skipped", present)
        folders = [(p.name, p) for p in sorted(root.iterdir())]
        if not queued:
            self.for_each(upload, folders)
            shutil.rmtree(root, ignore_errors=True)
            return

        def upload_then_remove(source_id: str, folder: Path) -> None:
            try:
                upload(source_id, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        for source_id, folder in folders:
            self.then(source_id, upload_then_remove, folder)

    def reset(self) -> None:
        self.rows, self.failed, self.current = {}, set(), []
