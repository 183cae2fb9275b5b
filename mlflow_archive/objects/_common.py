"""What the object-type modules share: packing owners' files, and replaying a chunk of owned objects."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from ..archive import Chunk, Member
from ..context import ExportContext, ImportContext
from ..endpoints import server_trouble
from ..errors import DamagedArchiveError
from ..members import check_artifact_path, extract_file

T = TypeVar("T")
COMPLETE, PARTIAL, ABANDONED = "complete", "partial", "abandoned"


def key_values(mapping: dict | None) -> list[dict]:
    """A string map as the archive's ``key_value`` list, in the source's order."""
    return [{"key": k, "value": v} for k, v in (mapping or {}).items()]


def pack_artifacts(
    ctx: ExportContext, chunk: Chunk, objects: list[T], owner: Callable[[T], str], download: Callable[[T, Path], Path]
) -> None:
    """Download each object's files (concurrently) and add them to the chunk as ``<owner>/<path>``."""
    workdir = ctx.workdir / chunk.section

    def fetch(obj: T) -> Path:
        target = workdir / owner(obj)
        target.mkdir(parents=True)
        return download(obj, target)

    with chunk.artifacts() as sink:
        for obj, local in zip(objects, ctx.ordered_map(fetch, objects)):
            for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()):
                archive_path = f"{owner(obj)}/{path.relative_to(local).as_posix()}"
                try:
                    check_artifact_path(archive_path)
                except DamagedArchiveError:
                    ctx.summary.fail(chunk.section, f"file {archive_path!r} has a name the format refuses (e.g. a backslash)")
                    continue
                sink.add(archive_path, path)
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


class ChunkReplay:
    """The objects of one chunk that an import creates, keyed by source ID.

    ``begin`` keeps the rows not already imported (complete) by an earlier run of the
    same import; ``for_each`` applies work to them concurrently, and a failure marks
    only that object failed, so the rest of the chunk goes on.

    ``submit`` queues one object's work without waiting, so an importer can leave a chunk's
    writes running while it reads the next chunk; ``drain`` waits for them.
    An object's queued work starts after its first task (the one that creates it) is done.
    """

    kind: str  # the IdMap kind, e.g. "run"
    object_type: str  # the summary's name, e.g. "runs"

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.rows: dict[str, dict] = {}
        self.failed: set[str] = set()
        self.current: list[str] = []  # the source IDs ``begin`` kept from the chunk being read
        self.work: dict[str, list[Future]] = {}  # submitted and not drained, by object
        self.stopped = False  # the server failed for good: queued work is dropped

    def begin(self, table: pa.Table, id_column: str) -> None:
        for row in table.to_pylist():
            known = self.ctx.ids.get(self.kind, row[id_column])
            if known and known[1] == COMPLETE:
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
        if self.stopped or not self.live(source_id):
            return
        try:
            work(source_id, *rest)
        except Exception as exc:
            if server_trouble(exc):
                self.stopped = True
            self.ctx.check_fatal(exc)
            if source_id not in self.failed:
                self.failed.add(source_id)
                self.ctx.summary.fail(self.object_type, exc)

    def for_each(self, work: Callable, items: Iterable[tuple]) -> None:
        """Apply ``work(source_id, *rest)`` to each item concurrently; a failure fails that object only."""
        for _ in self.ctx.ordered_map(lambda item: self._guarded(work, *item), items):
            pass

    def submit(self, source_id: str, work: Callable, *rest, after: Iterable[Future] = ()) -> Future:
        """Queue ``work(source_id, *rest)`` to run once the object's first task and ``after`` are done.

        Everything waited for was queued earlier, and the pool starts tasks in order, so waiting cannot deadlock.
        """
        waits = self.work.setdefault(source_id, [])[:1] + list(after)

        def task() -> None:
            wait(waits)
            self._guarded(work, source_id, *rest)

        future = self.ctx.pool.submit(task)
        self.work[source_id].append(future)
        return future

    def drain(self, source_ids: Iterable[str] | None = None) -> None:
        """Wait for the queued work of these objects (default: all), raise a fatal error, and forget them."""
        for source_id in list(self.rows if source_ids is None else source_ids):
            for future in self.work.pop(source_id, []):
                self.ctx.result(future)
            self.rows.pop(source_id, None)
            self.failed.discard(source_id)

    def upload_artifacts(self, member: Member, upload: Callable[[str, Path], None], queued: bool = False) -> None:
        """Extract the files of live objects, then ``upload(source_id, folder)`` each; counts them as ``artifact_files``.

        Files of objects an earlier import completed count as already present.
        ``queued``: the uploads are ``submit``-ted (each removes its folder when done) instead of waited for.
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
            self.submit(source_id, upload_then_remove, folder)

    def reset(self) -> None:
        self.rows, self.failed, self.current = {}, set(), []
