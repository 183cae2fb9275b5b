"""Encoding and decoding of the four member kinds: JSON, Parquet, Arrow IPC stream, artifact tarball.

Decoders treat their input as untrusted: sizes are bounded before anything is
decompressed, and artifact entries are checked before a byte is written to disk.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import zstandard

from .container import COPY_CHUNK, Spool
from .errors import DamagedArchiveError
from .schemas import Table

JSON_EXT, PARQUET_EXT, ARROWS_EXT, ARTIFACTS_EXT = ".json.zst", ".parquet", ".arrows", ".tar.zst"
ZSTD_LEVEL = 6
MAX_JSON_RAW = 256 << 20
MAX_TABLE_MEMBER = 128 << 20  # stored size of one Parquet or Arrow member (the spec's cap)
MAX_TABLE_RAW = 1 << 30  # decoded size of one Parquet or Arrow member
TABLE_PART_TARGET = 32 << 20  # in-memory Arrow bytes after which a writer starts a new part
ROW_GROUP_ROWS = 1 << 20


def kind_of(name: str) -> str | None:
    for ext in (JSON_EXT, PARQUET_EXT, ARROWS_EXT, ARTIFACTS_EXT):
        if name.endswith(ext):
            return ext
    return None


# -- JSON ---------------------------------------------------------------------------------

def encode_json(obj) -> tuple[Spool, int]:
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    spool = Spool()
    spool.write(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw))
    return spool, len(raw)


class BoundedDecompressor:
    """A file object over a zstd stream that refuses to produce more than ``limit`` bytes.

    Reading to the end also checks that exactly ``limit`` bytes came out.
    """

    def __init__(self, source: BinaryIO, limit: int, name: str) -> None:
        self._reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        self._limit, self._name, self.total = limit, name, 0

    def read(self, size: int = -1) -> bytes:
        want = self._limit + 1 - self.total if size < 0 else min(size, self._limit + 1 - self.total)
        try:
            data = self._reader.read(max(want, 1))
        except zstandard.ZstdError as exc:
            raise DamagedArchiveError(f"The archive is damaged: member {self._name} is not valid zstd ({exc}).") from None
        self.total += len(data)
        if self.total > self._limit:
            raise DamagedArchiveError(
                f"The archive is damaged: member {self._name} decompresses to more than its declared {self._limit} bytes."
            )
        if not data and self.total != self._limit:
            raise DamagedArchiveError(
                f"The archive is damaged: member {self._name} decompresses to {self.total} bytes, not the declared {self._limit}."
            )
        return data


def decode_json(spool: Spool, raw_size: int | None, name: str):
    if raw_size is None or raw_size > MAX_JSON_RAW:
        raise DamagedArchiveError(f"The archive is damaged: JSON member {name} declares no valid size.")
    stream = BoundedDecompressor(spool.rewind(), raw_size, name)
    raw = stream.read()
    stream.read()  # the end: checks the declared size
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise DamagedArchiveError(f"The archive is damaged: member {name} is not valid JSON.") from None


# -- Tables -------------------------------------------------------------------------------

def _spool_buffer(sink: pa.BufferOutputStream) -> Spool:
    spool = Spool()
    spool.write(sink.getvalue().to_pybytes())
    return spool


def encode_parquet(table: pa.Table) -> Spool:
    sink = pa.BufferOutputStream()
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    integers = [f.name for f in table.schema if pa.types.is_integer(f.type)]
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=[f.name for f in table.schema if f.name not in floats + integers],
        # Splitting a double's bytes into streams lets zstd find the redundancy in metric values;
        # deltas make increasing timestamps and steps nearly free.
        column_encoding={**{n: "BYTE_STREAM_SPLIT" for n in floats}, **{n: "DELTA_BINARY_PACKED" for n in integers}},
        write_statistics=False,
    )
    return _spool_buffer(sink)


def encode_arrows(table: pa.Table) -> Spool:
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=ZSTD_LEVEL))
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=64 * 1024)
    return _spool_buffer(sink)


def _conform(table: pa.Table, spec: Table, name: str) -> pa.Table:
    """Select the spec's columns in the spec's order; extra columns are dropped (forward compatible)."""
    columns = []
    for field in spec.schema:
        if field.name not in table.column_names:
            if not field.nullable:
                raise DamagedArchiveError(f"The archive is damaged: member {name} lacks the required column {field.name}.")
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DamagedArchiveError(
                    f"The archive is damaged: column {field.name} of member {name} has type {column.type}, not {field.type}."
                ) from None
        if not field.nullable and column.null_count:
            raise DamagedArchiveError(f"The archive is damaged: column {field.name} of member {name} holds nulls.")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=spec.schema)


def decode_table(spool: Spool, spec: Table, rows: int | None, name: str) -> pa.Table:
    if spool.size > MAX_TABLE_MEMBER:
        raise DamagedArchiveError(f"The archive is damaged: table member {name} is larger than the format allows.")
    try:
        if name.endswith(PARQUET_EXT):
            parquet = pq.ParquetFile(spool.rewind())
            meta = parquet.metadata
            raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if raw > MAX_TABLE_RAW or meta.num_rows != rows:
                raise DamagedArchiveError(
                    f"The archive is damaged: member {name} declares {rows} rows but holds {meta.num_rows} "
                    f"({raw} bytes decoded)."
                )
            table = parquet.read()
        else:
            batches, total = [], 0
            with ipc.open_stream(spool.rewind()) as reader:
                for batch in reader:
                    total += batch.nbytes
                    if total > MAX_TABLE_RAW:
                        raise DamagedArchiveError(f"The archive is damaged: member {name} decodes to too many bytes.")
                    batches.append(batch)
                table = pa.Table.from_batches(batches, schema=reader.schema)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DamagedArchiveError(f"The archive is damaged: member {name} cannot be decoded ({str(exc)[:200]}).") from None
    if table.num_rows != rows:
        raise DamagedArchiveError(f"The archive is damaged: member {name} declares {rows} rows but holds {table.num_rows}.")
    return _conform(table, spec, name)


# -- Artifact tarballs --------------------------------------------------------------------

class _CountingSpool:
    """Counts the uncompressed bytes that go into the zstd stream (the declared raw_size)."""

    def __init__(self, target) -> None:
        self.target = target
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return self.target.write(data)


def encode_artifacts(files: Iterable[tuple[str, Path]]) -> tuple[Spool, int, int]:
    """Pack (archive path, local file) pairs into a .tar.zst; returns (spool, raw_size, file count)."""
    spool = Spool()
    compressor = zstandard.ZstdCompressor(level=3).stream_writer(spool, closefd=False)
    counter = _CountingSpool(compressor)
    count = 0
    with tarfile.open(fileobj=counter, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for arcname, local in files:
            check_artifact_path(arcname)
            info = tarfile.TarInfo(arcname)
            info.size = local.stat().st_size
            info.mode = 0o644
            with open(local, "rb") as fh:
                tar.addfile(info, fh)
            count += 1
    compressor.flush(zstandard.FLUSH_FRAME)
    return spool, counter.size, count


def check_artifact_path(path: str) -> None:
    parts = PurePosixPath(path).parts
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(p in ("..", ".") for p in path.split("/"))
        or "" in path.split("/")
        or not parts
    ):
        raise DamagedArchiveError(f"The archive holds an artifact with the unsafe path {path[:120]!r}; it was refused.")


def iter_artifacts(
    spool: Spool, raw_size: int | None, name: str, files: int | None = None
) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (path, file object) for each regular file; links, devices and unsafe paths are refused.

    Once the last file is yielded, the declared ``raw_size`` and (if given) file count are checked.
    """
    if raw_size is None:
        raise DamagedArchiveError(f"The archive is damaged: artifact member {name} declares no size.")
    seen: set[str] = set()
    stream = BoundedDecompressor(spool.rewind(), raw_size, name)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if not info.isreg():
                    raise DamagedArchiveError(
                        f"Artifact member {name} holds {info.name[:80]!r}, which is not a regular file; it was refused."
                    )
                check_artifact_path(info.name)
                if info.name in seen:
                    raise DamagedArchiveError(f"Artifact member {name} holds {info.name[:80]!r} twice; it was refused.")
                seen.add(info.name)
                yield info.name, tar.extractfile(info)
        # tarfile stops at the end-of-archive marker: read the rest, so the declared size is checked too.
        while stream.read(COPY_CHUNK):
            pass
    except tarfile.TarError as exc:
        raise DamagedArchiveError(f"The archive is damaged: artifact member {name} is not a valid tar ({exc}).") from None
    if files is not None and len(seen) != files:
        raise DamagedArchiveError(
            f"The archive is damaged: artifact member {name} declares {files} files but holds {len(seen)}."
        )


def extract_file(source: BinaryIO, root: Path, relative: str) -> Path:
    """Write one checked artifact under ``root``, never following a link that is already there."""
    check_artifact_path(relative)
    target = root.joinpath(*relative.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(COPY_CHUNK):
            out.write(chunk)
    return target
