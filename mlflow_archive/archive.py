"""Archive semantics on top of the container: header, sections and chunks, table parts, trailer, versions.

formats/FORMAT.md is the normative description of everything here.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from . import __version__
from .container import ContainerReader, ContainerWriter, MemberInfo, Spool
from .errors import DamagedArchiveError, UnsupportedArchiveError, UnwritableArchiveError
from .members import (
    ARTIFACTS_EXT,
    JSON_EXT,
    PARQUET_EXT,
    TABLE_PART_TARGET,
    decode_json,
    decode_table,
    encode_arrows,
    encode_artifacts,
    encode_json,
    encode_parquet,
    iter_artifacts,
    kind_of,
)
from .schemas import KEY_VALUE, PARQUET, TABLES, Table

FORMAT_NAME = "mlflow-archive"
READER_VERSION = 5  # the highest reader version this code implements
WRITER_VERSION = 5
# What the archives this code writes declare as reader_version: every version 2 change is
# one that version 1 readers read correctly (new nullable columns, sections now filled).
WRITTEN_READER_VERSION = 1
KNOWN_FEATURES: frozenset[str] = frozenset()
HEADER_NAME = "header" + JSON_EXT
TRAILER_NAME = "trailer" + JSON_EXT
ARTIFACT_PART_TARGET = 256 << 20
UPGRADE_HINT = "upgrade with `pip install -U mlflow-archive`"

# Sections in archive order, each with its tables in member order. An importer
# replays front to back: nothing in a section refers to a later section.
SECTIONS: dict[str, tuple[str, ...]] = {
    "experiments": ("experiments",),
    "runs": ("runs", "run_params", "run_tags", "run_metrics", "run_inputs"),
    "logged_models": ("logged_models", "logged_model_metrics", "run_model_io"),
    "registry": ("registered_models", "model_versions"),
    "prompts": ("prompts", "prompt_versions"),
    "traces": ("traces", "spans", "assessments"),
    "evaluation_datasets": ("evaluation_datasets", "evaluation_dataset_records"),
    "webhooks": ("webhooks",),
    "scorers": ("scorers", "scorer_versions", "online_scoring_configs"),
    "label_schemas": ("label_schemas",),
    "issues": ("issues", "issue_categories"),
}
# The columns that identify a table's row: no two rows of an archive share them (FORMAT.md 12.2). Objects
# (a section's first table, and the assessments and records that have IDs of their own) are checked across
# the whole archive; the other tables here hold an object's details, in its chunk, so the chunk is checked.
IDENTITIES: dict[str, tuple[str, ...]] = {
    "experiments": ("experiment_id",),
    "runs": ("run_id",),
    "run_params": ("run_id", "key"),
    "run_tags": ("run_id", "key"),
    "logged_models": ("model_id",),
    "registered_models": ("name",),
    "model_versions": ("name", "version"),
    "prompts": ("name",),
    "prompt_versions": ("name", "version"),
    "traces": ("trace_id",),
    "assessments": ("assessment_id",),
    "evaluation_datasets": ("dataset_id",),
    "evaluation_dataset_records": ("record_id",),
}
ARCHIVE_WIDE = frozenset({*(tables[0] for tables in SECTIONS.values()), "assessments", "evaluation_dataset_records"})
# The tables whose rows the reader checks against each other as it decodes them (identities, key-value lists).
ROW_CHECKED = frozenset(t for t in TABLES if t in IDENTITIES or KEY_VALUE in TABLES[t].schema.types)
ARTIFACTS = "artifacts"
ARTIFACT_SECTIONS = ("runs", "logged_models", "registry")  # the sections whose objects own files
MEMBER_NAME = re.compile(r"(?P<section>[a-z_]+)/(?P<chunk>\d{6})/(?P<stem>[a-z_]+)-(?P<part>\d{4})(?P<ext>\.[a-z.]+)")


def member_name(section: str, chunk: int, stem: str, part: int, ext: str) -> str:
    if chunk > 999_999 or part > 9_999:
        raise ValueError(f"{section} needs more than 999999 chunks or 9999 parts of {stem}: raise the chunk size")
    return f"{section}/{chunk:06d}/{stem}-{part:04d}{ext}"


def _ext_for(table: Table) -> str:
    return PARQUET_EXT if table.storage == PARQUET else ".arrows"


def descriptive(fields: dict, key: str) -> dict:
    """A descriptive object of the header or trailer (``source``, ``export``, ``writer``, ``counts``): one
    that is missing or not an object reads as empty, never as a reason to refuse (FORMAT.md 8, 9)."""
    value = fields.get(key)
    return value if isinstance(value, dict) else {}


class ArchiveWriter:
    """Writes an archive to a binary stream; memory stays bounded by one member part."""

    def __init__(self, stream: BinaryIO, header: dict, mtime: int) -> None:
        self._container = ContainerWriter(stream, mtime)
        self.members: list[MemberInfo] = []
        self.counts: dict[str, int] = {}
        self._chunks: dict[str, int] = {}
        self._section_order = 0
        full_header = {
            "format": FORMAT_NAME,
            "reader_version": WRITTEN_READER_VERSION,
            "writer_version": WRITER_VERSION,
            "required_features": [],
            "optional_features": [],
            "writer": {"name": "mlflow-archive", "version": __version__},
            **header,  # last, so a test can stand in for a future writer
        }
        self._add_json(HEADER_NAME, full_header)

    @property
    def bytes_written(self) -> int:
        return self._container.bytes_written

    def _add(self, name: str, spool: Spool, rows: int | None = None, raw_size: int | None = None) -> None:
        with spool:
            self.members.append(self._container.add(name, spool, rows, raw_size))

    def _add_json(self, name: str, obj) -> None:
        spool, raw_size = encode_json(obj)
        self._add(name, spool, raw_size=raw_size)

    def chunk(self, section: str) -> Chunk:
        """Start the next chunk of ``section``; sections must be started in archive order."""
        order = list(SECTIONS).index(section)
        if order < self._section_order:
            raise ValueError(f"section {section} written after a later section")
        self._section_order = order
        self._chunks[section] = self._chunks.get(section, 0) + 1
        return Chunk(self, section, self._chunks[section])

    def count(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def close(self) -> None:
        self._add_json(TRAILER_NAME, {"members": [m.to_json() for m in self.members], "counts": self.counts})
        self._container.finish()


@dataclass
class Chunk:
    """One chunk of a section: its tables, then its artifacts."""

    writer: ArchiveWriter
    section: str
    number: int
    _parts: dict[str, int] = field(default_factory=dict)

    def _next_name(self, stem: str, ext: str) -> str:
        self._parts[stem] = self._parts.get(stem, 0) + 1
        return member_name(self.section, self.number, stem, self._parts[stem], ext)

    def table(self, name: str) -> TableSink:
        if name not in SECTIONS[self.section]:
            raise ValueError(f"table {name} does not belong in section {self.section}")
        return TableSink(self, TABLES[name])

    def write_table(self, name: str, rows: dict[str, list] | pa.Table) -> None:
        with self.table(name) as sink:
            sink.append(rows)

    def artifacts(self) -> ArtifactSink:
        return ArtifactSink(self)


class TableSink:
    """Buffers rows of one table and writes a part whenever the buffer reaches the part target."""

    def __init__(self, chunk: Chunk, table: Table) -> None:
        self._chunk, self._table = chunk, table
        self._batches: list[pa.RecordBatch] = []
        self._bytes = 0

    def append(self, rows: dict[str, list] | pa.Table | pa.RecordBatch) -> None:
        if isinstance(rows, dict):
            rows = pa.RecordBatch.from_pydict(rows, schema=self._table.schema)
        elif isinstance(rows, pa.Table):
            rows = rows.cast(self._table.schema).combine_chunks().to_batches()
            for batch in rows:
                self.append(batch)
            return
        if rows.num_rows == 0:
            return
        if rows.nbytes > TABLE_PART_TARGET and rows.num_rows > 1:
            # One oversized batch would make one oversized part: split it by rows.
            step = max(1, rows.num_rows * TABLE_PART_TARGET // rows.nbytes // 2)
            for start in range(0, rows.num_rows, step):
                self.append(rows.slice(start, step))
            return
        self._batches.append(rows)
        self._bytes += rows.nbytes
        if self._bytes >= TABLE_PART_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self._batches:
            return
        table = pa.Table.from_batches(self._batches, schema=self._table.schema)
        self._batches, self._bytes = [], 0
        encode = encode_parquet if self._table.storage == PARQUET else encode_arrows
        writer = self._chunk.writer
        writer._add(self._chunk._next_name(self._table.name, _ext_for(self._table)), encode(table), rows=table.num_rows)
        writer.count(self._table.name, table.num_rows)

    def __enter__(self) -> TableSink:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.flush()


class ArtifactSink:
    """Packs artifact files into .tar.zst parts of about ARTIFACT_PART_TARGET bytes each."""

    def __init__(self, chunk: Chunk) -> None:
        self._chunk = chunk
        self._files: list[tuple[str, Path]] = []
        self._bytes = 0

    def add(self, archive_path: str, local: Path) -> None:
        self._files.append((archive_path, local))
        self._bytes += local.stat().st_size
        if self._bytes >= ARTIFACT_PART_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self._files:
            return
        spool, raw_size, count = encode_artifacts(self._files)
        total = self._bytes
        self._files, self._bytes = [], 0
        writer = self._chunk.writer
        writer._add(self._chunk._next_name(ARTIFACTS, ARTIFACTS_EXT), spool, rows=count, raw_size=raw_size)
        writer.count("artifact_files", count)
        writer.count("artifact_bytes", total)

    def __enter__(self) -> ArtifactSink:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.flush()


class RowIdentities:
    """The identities of the rows read so far (FORMAT.md 12.2): objects' for the whole archive, in a temporary
    SQLite database (on disk once it outgrows its cache: memory does not grow with the archive), details' for
    the current chunk; and the keys of each row's key-value lists."""

    def __init__(self) -> None:
        self._objects: sqlite3.Connection | None = None
        self._chunk: tuple[str, int] | None = None
        self._details: dict[str, set[tuple]] = {}  # the current chunk's identities, by table

    def check(self, member: Member, table: pa.Table) -> None:
        for field in member.table_spec.schema:
            if field.type == KEY_VALUE:
                _refuse_repeated_keys(member.name, field.name, table[field.name])
        columns = IDENTITIES.get(member.stem)
        if columns is None:
            return
        keys = list(zip(*(table[c].to_pylist() for c in columns)))
        if member.stem in ARCHIVE_WIDE:
            _add_unique(member, columns, keys, set())
            self._add_objects(member, columns, [k[0] for k in keys])
            return
        if self._chunk != (member.section, member.chunk):
            self._chunk, self._details = (member.section, member.chunk), {}
        _add_unique(member, columns, keys, self._details.setdefault(member.stem, set()))

    def _add_objects(self, member: Member, columns: tuple[str, ...], ids: list[str]) -> None:
        if self._objects is None:
            self._objects = sqlite3.connect("")  # SQLite's private temporary database, deleted when closed
            self._objects.execute("CREATE TABLE seen (stem TEXT, id TEXT, PRIMARY KEY (stem, id)) WITHOUT ROWID")
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            earlier = self._objects.execute(f"SELECT id FROM seen WHERE stem = ? AND id IN ({marks})",
                                            [member.stem, *batch]).fetchone()
            if earlier is not None:
                _refuse_repeated_row(member, columns, earlier)
            self._objects.executemany("INSERT INTO seen VALUES (?, ?)", [(member.stem, i) for i in batch])

    def close(self) -> None:
        if self._objects is not None:
            self._objects.close()


def _add_unique(member: Member, columns: tuple[str, ...], keys: list[tuple], seen: set[tuple]) -> None:
    for key in keys:
        if key in seen:
            _refuse_repeated_row(member, columns, key)
        seen.add(key)


def _refuse_repeated_row(member: Member, columns: tuple[str, ...], key: tuple) -> None:
    named = ", ".join(f"{column} {value!r}" for column, value in zip(columns, key))
    raise UnwritableArchiveError(
        f"The archive holds two {member.stem} rows with {named} (the second in {member.name}); "
        "an importer cannot tell which is meant, so it was refused."
    )


def _refuse_repeated_keys(name: str, column: str, lists: pa.ChunkedArray) -> None:
    """Refuse a row whose key-value list holds a key twice: a map has each key once."""
    lists = lists.combine_chunks()
    # pc.struct_field, unlike StructArray.field, keeps a null item null (its key slot holds anything)
    pairs = pa.table({"row": pc.list_parent_indices(lists), "key": pc.struct_field(pc.list_flatten(lists), "key")}).drop_null()
    if pairs.num_rows == pairs.group_by(["row", "key"], use_threads=False).aggregate([]).num_rows:
        return
    counts = pairs.group_by(["row", "key"], use_threads=False).aggregate([("key", "count")])
    key = counts.filter(pc.greater(counts["key_count"], 1))["key"][0].as_py()
    raise UnwritableArchiveError(
        f"The archive holds a row of {name} whose {column} name the key {key!r} twice; "
        "an importer cannot tell which value is meant, so it was refused."
    )


@dataclass
class Member:
    """A verified member. Its bytes are valid until the reader moves to the next member."""

    info: MemberInfo
    spool: Spool
    section: str
    chunk: int
    stem: str
    kind: str
    chunk_paths: set[str] = field(default_factory=set)  # artifact paths (and their folders + "/") of the chunk's earlier parts
    identities: RowIdentities = field(default_factory=RowIdentities)
    _identities_checked: bool = False

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def table_spec(self) -> Table | None:
        return TABLES.get(self.stem) if self.kind != ARTIFACTS_EXT else None

    def read_table(self) -> pa.Table:
        table = decode_table(self.spool, self.table_spec, self.info.rows, self.name)
        if not self._identities_checked:  # a member read twice holds its rows once
            self.identities.check(self, table)
            self._identities_checked = True
        return table

    def iter_artifacts(self) -> Iterator[tuple[str, BinaryIO]]:
        return iter_artifacts(self.spool, self.info.raw_size, self.name, self.info.rows, self.chunk_paths)


class ArchiveReader:
    """Reads an archive front to back from any binary stream, seekable or not.

    The header is read and checked on construction. Iteration yields each known
    member once it has passed its checksum; unknown optional members are skipped
    and listed in ``ignored``. Iteration ends only after the trailer has been
    matched against every member seen, so a truncated archive always raises.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._container = iter(ContainerReader(stream))
        self.seen: list[MemberInfo] = []
        self.ignored: list[str] = []
        self.trailer: dict | None = None
        self.identities = RowIdentities()
        self.header = self._read_header()

    def _next_raw(self) -> tuple[MemberInfo, Spool] | None:
        try:
            return next(self._container)
        except StopIteration:
            return None
        except DamagedArchiveError as exc:
            if not self.seen and "truncated" in str(exc):
                raise DamagedArchiveError(
                    "The file is empty or too short to be an mlflow-archive (it ends inside its first member); "
                    "check that you passed the right file, or copy it again if it was cut short."
                ) from None
            raise

    def _read_header(self) -> dict:
        first = self._next_raw()
        if first is None:
            raise DamagedArchiveError("The file is an empty tar, not an mlflow-archive; check that you passed the right file.")
        info, spool = first
        with spool:
            if info.name != HEADER_NAME:
                raise DamagedArchiveError(
                    f"This is not an mlflow-archive: its first member is {info.name}, not {HEADER_NAME}."
                )
            header = decode_json(spool, info.raw_size, info.name)
        self.seen.append(info)
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise DamagedArchiveError("This is not an mlflow-archive: its header names another format.")
        needed = header.get("reader_version")
        if type(needed) is not int or needed < 1:
            raise DamagedArchiveError("The archive header has no valid reader_version; the archive is damaged.")
        if needed > READER_VERSION:
            raise UnsupportedArchiveError(
                f"This archive needs format reader version {needed}, but mlflow-archive {__version__} reads "
                f"up to version {READER_VERSION}; {UPGRADE_HINT}."
            )
        features = header.get("required_features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise DamagedArchiveError("The archive header's required_features is not a list of names; the archive is damaged.")
        unknown = sorted(set(features) - KNOWN_FEATURES)
        if unknown:
            raise UnsupportedArchiveError(
                f"This archive requires the format feature(s) {', '.join(unknown)}, which mlflow-archive "
                f"{__version__} does not implement; {UPGRADE_HINT}."
            )
        return header

    def __iter__(self) -> Iterator[Member]:
        position = (0, 0)
        chunk_paths: set[str] = set()
        while True:
            raw = self._next_raw()
            if raw is None:
                raise DamagedArchiveError(
                    "The archive is truncated: it ends without its trailer; copy or download it again."
                )
            info, spool = raw
            with spool:
                if info.name == TRAILER_NAME:
                    self._check_trailer(decode_json(spool, info.raw_size, info.name))
                    break
                self.seen.append(info)
                match = MEMBER_NAME.fullmatch(info.name)
                section = match and match["section"]
                if not match or section not in SECTIONS or kind_of(info.name) != match["ext"]:
                    self.ignored.append(info.name)
                    continue
                here = (list(SECTIONS).index(section), int(match["chunk"]))
                if not here[1] or not int(match["part"]):
                    raise DamagedArchiveError(f"The archive is damaged: member {info.name} has chunk or part number 0.")
                if here < position:
                    raise DamagedArchiveError(f"The archive is damaged: member {info.name} is out of order.")
                if here != position:
                    chunk_paths = set()
                position = here
                stem = match["stem"]
                known_table = stem in SECTIONS[section] and match["ext"] == _ext_for(TABLES[stem])
                known_artifacts = stem == ARTIFACTS and match["ext"] == ARTIFACTS_EXT and section in ARTIFACT_SECTIONS
                if not (known_table or known_artifacts):
                    self.ignored.append(info.name)
                    continue
                if info.rows is None or (stem == ARTIFACTS and info.raw_size is None):
                    raise DamagedArchiveError(f"The archive is damaged: member {info.name} declares no row count or size.")
                yield Member(info, spool, section, here[1], stem, match["ext"], chunk_paths, self.identities)
        self.identities.close()
        if self._next_raw() is not None:
            raise DamagedArchiveError("The archive is damaged: members follow its trailer.")

    def _check_trailer(self, trailer) -> None:
        listed = trailer.get("members") if isinstance(trailer, dict) else None
        known = ("name", "size", "sha256", "rows", "raw_size")
        # Compared with their JSON types: 3.0 and true are not the integer 3 and 1 (FORMAT.md 6.1).
        if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed) or [
            {k: (type(m[k]), m[k]) for k in known if k in m} for m in listed
        ] != [{k: (type(v), v) for k, v in m.to_json().items()} for m in self.seen]:
            raise DamagedArchiveError(
                "The archive is damaged: its trailer does not list the members that were read."
            )
        self.trailer = trailer

    @property
    def counts(self) -> dict[str, int]:
        """The trailer's counts, for display; entries that are not integers are left out."""
        return {k: v for k, v in descriptive(self.trailer or {}, "counts").items() if type(v) is int}
