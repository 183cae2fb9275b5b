"""What the object-type modules share: packing owners' files, and replaying a chunk of owned objects."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from ..archive import Chunk, Member
from ..context import ExportContext, ImportContext
from ..errors import DamagedArchiveError
from ..members import check_artifact_path, extract_file

T = TypeVar("T")
COMPLETE, PARTIAL, ABANDONED = "complete", "partial", "abandoned"


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
    """

    kind: str  # the IdMap kind, e.g. "run"
    object_type: str  # the summary's name, e.g. "runs"

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.rows: dict[str, dict] = {}
        self.failed: set[str] = set()

    def begin(self, table: pa.Table, id_column: str) -> None:
        for row in table.to_pylist():
            known = self.ctx.ids.get(self.kind, row[id_column])
            if known and known[1] == COMPLETE:
                self.ctx.summary.add(self.object_type, "skipped")
                continue
            row["replaces"] = known[0] if known else None
            self.rows[row[id_column]] = row

    def live(self, source_id: str) -> bool:
        return source_id in self.rows and source_id not in self.failed

    def dest(self, source_id: str) -> str:
        return self.rows[source_id]["dest_id"]

    def for_each(self, work: Callable, items: Iterable[tuple]) -> None:
        """Apply ``work(source_id, *rest)`` to each item concurrently; a failure fails that object only."""

        def guarded(item: tuple) -> None:
            if not self.live(item[0]):
                return
            try:
                work(*item)
            except Exception as exc:
                self.ctx.check_fatal(exc)
                if item[0] not in self.failed:
                    self.failed.add(item[0])
                    self.ctx.summary.fail(self.object_type, exc)

        for _ in self.ctx.ordered_map(guarded, items):
            pass

    def upload_artifacts(self, member: Member, upload: Callable[[str, Path], None]) -> None:
        """Extract the files of live objects, then ``upload(source_id, folder)`` each; counts them as ``artifact_files``.

        Files of objects an earlier import completed count as already present.
        """
        root = self.ctx.workdir / member.section
        files = present = 0
        for path, data in member.iter_artifacts():
            source_id, _, relative = path.partition("/")
            if relative and self.live(source_id):  # a path naming no file of an owner is ignored (FORMAT.md 6.4)
                extract_file(data, root / source_id, relative)
                files += 1
            elif source_id not in self.rows:
                present += 1
        if root.exists():
            self.for_each(upload, [(p.name, p) for p in sorted(root.iterdir())])
            shutil.rmtree(root, ignore_errors=True)
        self.ctx.summary.add("artifact_files", "created", files)
        self.ctx.summary.add("artifact_files", "skipped", present)

    def reset(self) -> None:
        self.rows, self.failed = {}, set()
