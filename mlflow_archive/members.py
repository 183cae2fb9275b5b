"""Encoding and decoding of the four member kinds: JSON, Parquet, Arrow IPC stream, artifact tarball.

Decoders treat their input as untrusted: sizes are bounded before anything is
decompressed, and artifact entries are checked before a byte is written to disk.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import zstandard

from .container import BLOCK, COPY_CHUNK, MAX_PAX_HEADER, Spool, entry_name, entry_size, header_problem, parse_octal, parse_pax
from .errors import ArchiveError, DamagedArchiveError, InsufficientMemoryError, UnwritableArchiveError, one_line
from .schemas import KEY_VALUE, Table

JSON_EXT, PARQUET_EXT, ARROWS_EXT, ARTIFACTS_EXT = ".json.zst", ".parquet", ".arrows", ".tar.zst"
ZSTD_LEVEL = 6
MAX_JSON_RAW = 256 << 20
MAX_JSON_DEPTH = 64  # arrays and objects inside one another in a JSON member; the writer's deepest is 3
MAX_TABLE_MEMBER = 128 << 20  # stored size of one Parquet or Arrow member (the spec's cap)
MAX_TABLE_RAW = 1 << 30  # decoded size of one Parquet or Arrow member
# A writer's part holds under 64 MiB of Arrow data (it starts a new part at 32 MiB) and every table has a
# required string column whose offsets take 4 bytes a row: under 16 Mi rows, whatever the table.
MAX_TABLE_ROWS = 1 << 24
TABLE_PART_TARGET = 32 << 20  # in-memory Arrow bytes after which a writer starts a new part
ROW_GROUP_ROWS = 1 << 20
MAX_NAME_COMPONENT = 255  # bytes of one artifact path component: what the common file systems can create


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


ZSTD_MAGIC = 0xFD2FB528
ZSTD_SKIPPABLE = 0x184D2A50  # the skippable frames' magic numbers are 0x184D2A50 to 0x184D2A5F


def check_zstd_frames(source: BinaryIO, name: str) -> None:
    """Refuse a member whose bytes are not one or more complete zstd frames (RFC 8878 3.1, FORMAT.md 6),
    skippable frames allowed: walks the frame and block headers, before anything is decompressed. A frame
    cut after its last full block (its last block or content checksum missing) is not a frame, though
    python-zstandard's stream reader returns its content without an error."""

    def refuse(problem: str) -> DamagedArchiveError:
        return DamagedArchiveError(f"The archive is damaged: member {name} is not one or more complete zstd frames ({problem}).")

    size = source.seek(0, os.SEEK_END)
    pos = 0

    def read(at: int, length: int) -> int:
        source.seek(at)
        data = source.read(length)
        if len(data) < length:
            raise refuse(f"a frame is cut short at byte {at}")
        return int.from_bytes(data, "little")

    if not size:
        raise refuse("it is empty")
    while pos < size:
        magic = read(pos, 4)
        if magic & 0xFFFFFFF0 == ZSTD_SKIPPABLE:
            pos += 8 + read(pos + 4, 4)
            if pos > size:
                raise refuse("a skippable frame is cut short")
            continue
        if magic != ZSTD_MAGIC:
            raise refuse(f"bytes that are no frame at byte {pos}")
        descriptor = read(pos + 4, 1)
        if descriptor & 0x08:
            raise refuse("a frame header's reserved bit is set")
        single_segment = descriptor >> 5 & 1
        pos += 5 + (1 - single_segment) + (0, 1, 2, 4)[descriptor & 3] + (single_segment, 2, 4, 8)[descriptor >> 6]
        while True:
            block = read(pos, 3)
            kind = block >> 1 & 3
            if kind == 3:
                raise refuse(f"a block of the reserved type at byte {pos}")
            pos += 3 + (1 if kind == 1 else block >> 3)  # an RLE block stores its byte once
            if block & 1:
                break
        pos += 4 * (descriptor >> 2 & 1)  # the content checksum
        if pos > size:
            raise refuse("the last frame is cut short")
    source.seek(0)


class BoundedDecompressor:
    """A file object over a zstd stream that refuses to produce more than ``limit`` bytes.

    Its framing is checked first (check_zstd_frames); reading to the end also checks that exactly ``limit``
    bytes came out.
    """

    def __init__(self, source: BinaryIO, limit: int, name: str) -> None:
        check_zstd_frames(source, name)
        self._reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        self._limit, self._name, self.total = limit, name, 0

    def read(self, size: int = -1) -> bytes:
        want = self._limit + 1 - self.total if size < 0 else min(size, self._limit + 1 - self.total)
        try:
            data = self._reader.read(max(want, 1))
        except zstandard.ZstdError as exc:
            raise DamagedArchiveError(f"The archive is damaged: member {self._name} is not valid zstd ({one_line(exc)}).") from None
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
    too_deep = DamagedArchiveError(
        f"The archive is damaged: member {name} holds JSON nested more than {MAX_JSON_DEPTH} levels deep (FORMAT.md 6.1)."
    )
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:  # Python's parser recurses once per level: nesting far beyond MAX_JSON_DEPTH
        raise too_deep from None
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError, and so are our refusals
        raise DamagedArchiveError(f"The archive is damaged: member {name} is not valid JSON (FORMAT.md 6.1).") from None
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def _nested_deeper_than(value, limit: int) -> bool:
    """Whether arrays and objects sit more than ``limit`` levels inside one another in ``value`` (the outermost is
    level 1); walked one level at a time, without recursion."""
    containers = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        containers = [
            child for c in containers for child in (c.values() if isinstance(c, dict) else c) if isinstance(child, (dict, list))
        ]
    return bool(containers)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """Refuse an object with a key twice: readers that keep the first or the last copy would disagree."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


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


def _decodes_too_large(name: str) -> DamagedArchiveError:
    return DamagedArchiveError(f"The archive is damaged: member {name} decodes to more than {MAX_TABLE_RAW} bytes.")


def _value_lengths(array: pa.Array) -> pa.Array:
    """The byte length of each value of a string or binary array (0 for nulls), without building the values;
    a view array's lengths are the first 4 bytes of its 16-byte views."""
    if not (pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type)):
        return pc.binary_length(array)
    views = pa.Array.from_buffers(pa.int32(), 4 * (array.offset + len(array)), [None, array.buffers()[1]])
    lengths = pc.list_element(pa.FixedSizeListArray.from_arrays(views, 4), 0).slice(array.offset)
    return pc.if_else(array.is_valid(), lengths, 0)


LENGTHS_SLICE = 1 << 20  # dictionary indices looked up at a time


def _plain_size(array: pa.Array) -> int:
    """Bytes ``array`` takes once dictionaries and views are expanded (what _conform's casts build),
    computed from indices and lengths: a few bytes of dictionary or views can stand for gigabytes."""
    kind, count = array.type, len(array)
    validity = (count + 7) // 8
    if pa.types.is_dictionary(kind):
        values = array.dictionary
        if pa.types.is_primitive(values.type):
            return validity + count * values.type.bit_width // 8
        lengths, expanded = _value_lengths(values), 0
        for start in range(0, count, LENGTHS_SLICE):  # a slice at a time: memory stays that of the dictionary
            expanded += pc.sum(lengths.take(array.indices.slice(start, LENGTHS_SLICE)).cast(pa.int64())).as_py() or 0
        return validity + 4 * (count + 1) + expanded
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        return validity + 4 * (count + 1) + (pc.sum(_value_lengths(array).cast(pa.int64())).as_py() or 0)
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        # Views may share elements, so the list a cast builds has no bound in the stored size.
        raise ValueError(f"a column of type {kind} is not allowed (FORMAT.md 7)")
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return validity + 4 * (count + 1) + _plain_size(array.flatten())
    if pa.types.is_struct(kind):
        return validity + sum(_plain_size(array.field(i)) for i in range(kind.num_fields))
    return array.nbytes


def _converts(kind: pa.DataType, listed: pa.DataType) -> bool:
    """Whether a column of type ``kind`` may convert to its listed type (FORMAT.md 7, "without loss"): a fixed
    list, whatever Arrow's casts accept; the values are then checked by a safe cast (integers in range, floats
    integral, UTF-8). Dictionaries count as their values (the reference reader reads Parquet strings as them)."""
    if pa.types.is_dictionary(kind):
        return _converts(kind.value_type, listed)
    if kind == listed or pa.types.is_null(kind):
        return True
    if pa.types.is_integer(listed):
        return pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if pa.types.is_floating(listed):
        return pa.types.is_floating(kind)
    if pa.types.is_string(listed):
        return any(is_(kind) for is_ in STRING_LIKE)
    if pa.types.is_list(listed):
        return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _converts(kind.value_type, listed.value_type)
    if pa.types.is_struct(listed):
        return (
            pa.types.is_struct(kind)
            and [f.name for f in kind] == [f.name for f in listed]
            and all(_converts(f.type, g.type) for f, g in zip(kind, listed))
        )
    return False


STRING_LIKE = (
    pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
    pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view,
)


def _null_keys(column: pa.ChunkedArray) -> bool:
    """Whether a key-value list column holds a non-null item whose ``key`` is null (null items are values)."""
    try:
        for chunk in column.chunks:
            items = pc.list_flatten(chunk)
            if pc.struct_field(items, "key").null_count > items.null_count:
                return True
    except (pa.ArrowException, TypeError):  # not a list of structs with a key: the cast below refuses it
        return False
    return False


def _conform(table: pa.Table, spec: Table, name: str) -> pa.Table:
    """Select the spec's columns in the spec's order; extra columns are dropped (forward compatible).

    What each column will take is added up before it is built: past MAX_TABLE_RAW the member is refused."""
    columns, built = [], 0
    for field in spec.schema:
        if field.name not in table.column_names:
            if not field.nullable:
                raise DamagedArchiveError(f"The archive is damaged: member {name} lacks the required column {field.name}.")
            width = field.type.bit_width // 8 if pa.types.is_primitive(field.type) else 4  # values or offsets
            built += table.num_rows * width + (table.num_rows + 7) // 8
            if built > MAX_TABLE_RAW:
                raise _decodes_too_large(name)
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        built += sum(_plain_size(chunk) for chunk in column.chunks)
        if built > MAX_TABLE_RAW:
            raise _decodes_too_large(name)
        if field.type == KEY_VALUE and _null_keys(column):
            raise DamagedArchiveError(f"The archive is damaged: column {field.name} of member {name} holds a null key (FORMAT.md 7).")
        if column.type != field.type:
            if not _converts(column.type, field.type):
                raise DamagedArchiveError(
                    f"The archive is damaged: column {field.name} of member {name} has type {column.type}, not {field.type}."
                )
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


class _FlatTable:
    """Just enough of a FlatBuffers table reader to read an Arrow IPC message's sizes before decoding it."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vtable, self._vtable_size = vtable, struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        offset = struct.unpack_from("<H", self.buf, self._vtable + slot)[0] if slot < self._vtable_size else 0
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        return default if at is None else struct.unpack_from(fmt, self.buf, at)[0]

    def _target(self, index: int) -> int | None:
        at = self._field(index)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, index: int) -> _FlatTable | None:
        at = self._target(index)
        return None if at is None else _FlatTable(self.buf, at)

    def structs(self, index: int, fmt: str) -> list[tuple]:
        at = self._target(index)
        if at is None:
            return []
        count, size = struct.unpack_from("<I", self.buf, at)[0], struct.calcsize(fmt)
        if at + 4 + count * size > len(self.buf):
            raise struct.error("vector past the end")
        return [struct.unpack_from(fmt, self.buf, at + 4 + i * size) for i in range(count)]


ARROW_SCHEMA, ARROW_RECORD_BATCH = 1, 3  # MessageHeader union tags of Arrow's Message.fbs
ARROW_ZSTD = 1  # CompressionType of Arrow's Message.fbs (0 is LZ4_FRAME)
ARROW_BUFFER_METHOD = 0  # BodyCompressionMethod of Arrow's Message.fbs: BUFFER, the only one
PARQUET_CODECS = ("ZSTD", "UNCOMPRESSED")
# The same codecs as Parquet's CompressionCodec numbers: the footer walk checks them before pyarrow sees
# them, since pyarrow 26 ends the process (std::terminate) on a number it does not know.
PARQUET_ZSTD = 6
PARQUET_CODEC_IDS = (0, PARQUET_ZSTD)
ARROW_END = b"\xff\xff\xff\xff\0\0\0\0"
# String encodings that cannot be read as dictionaries (so values are built expanded); with DELTA_BYTE_ARRAY
# each value can repeat the previous one's prefix, so a few bytes stand for any length.
PARQUET_DELTA_STRINGS = {"DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"}


def _zstd_content_size(data: bytes, start: int, length: int) -> int:
    """The content size a zstd frame header declares, -1 if it declares none (or is no valid frame)."""
    try:
        return zstandard.frame_content_size(data[start : start + min(length, 32)])
    except zstandard.ZstdError:
        return -1


def _check_arrow_stream(data: bytes, name: str) -> None:
    """Walk the IPC stream's framing and refuse it before pyarrow allocates anything it declares.

    One schema message, then record batches (no dictionary batches), then the end-of-stream marker
    and nothing after it; the buffers' declared decompressed sizes add up to at most MAX_TABLE_RAW.
    """
    def refuse(problem: str) -> DamagedArchiveError:
        return DamagedArchiveError(f"The archive is damaged: Arrow member {name} {problem}.")

    pos, decoded, messages = 0, 0, 0
    try:
        while True:
            if pos + 8 > len(data):
                raise refuse("ends without its end-of-stream marker")
            marker, length = struct.unpack_from("<Ii", data, pos)
            if marker != 0xFFFFFFFF or length < 0 or length % 8 or pos + 8 + length > len(data):
                raise refuse("has a malformed message frame")
            if length == 0:
                if pos + 8 != len(data):
                    raise refuse("has bytes after its end-of-stream marker")
                break
            metadata = data[pos + 8 : pos + 8 + length]
            message = _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0])
            kind, body = message.scalar(1, "<B"), message.scalar(3, "<q")
            body_start = pos + 8 + length
            if body < 0 or body_start + body > len(data):
                raise refuse("declares a message body past its end")
            if kind != (ARROW_SCHEMA if messages == 0 else ARROW_RECORD_BATCH):
                raise refuse("holds a message other than one schema followed by record batches")
            if kind == ARROW_SCHEMA and body:
                raise refuse("has a schema message with a body")
            if kind == ARROW_RECORD_BATCH:
                batch = message.table(2)
                compression = batch.table(3) if batch is not None else None
                compressed = compression is not None
                if compressed and compression.scalar(0, "<b") != ARROW_ZSTD:
                    raise refuse("compresses its buffers with another codec than ZSTD")
                if compressed and compression.scalar(1, "<b") != ARROW_BUFFER_METHOD:
                    raise refuse("compresses its body by another method than BUFFER")
                for offset, size in batch.structs(2, "<qq") if batch is not None else []:
                    if offset < 0 or size < 0 or offset + size > body:
                        raise refuse("declares a buffer past its message body")
                    if compressed and 0 < size < 8:
                        raise refuse("has a compressed buffer too short for its length prefix")
                    declared = struct.unpack_from("<q", data, body_start + offset)[0] if compressed and size else -1
                    if declared < -1:
                        raise refuse("declares a negative buffer size")
                    decoded += size if declared == -1 else declared
                    if decoded > MAX_TABLE_RAW:
                        raise refuse("decodes to more bytes than the format allows")
                    if declared >= 0 and _zstd_content_size(data, body_start + offset + 8, size - 8) not in (-1, declared):
                        raise refuse("declares another buffer size than its zstd frame")
            messages += 1
            pos = body_start + body
    except struct.error:
        raise refuse("is not a valid Arrow IPC stream (it ends inside a message)") from None


class _Binary(bytes):
    """A Thrift binary that knows where it starts in what was parsed."""

    def __new__(cls, value: bytes, at: int) -> _Binary:
        binary = super().__new__(cls, value)
        binary.at = at
        return binary


class _Thrift:
    """A reader of Thrift's compact protocol, enough to walk a Parquet footer: structs read as
    {field id: value}, lists as lists, binaries as bytes; depth and sizes bounded by the input."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("footer ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def _varint(self) -> int:
        value = shift = 0
        while True:
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def value(self, kind: int, depth: int = 0):
        if depth > 64:
            raise ValueError("footer nested too deeply")
        if kind in (1, 2):  # booleans: in a struct the type is the value, in a list one byte follows
            return kind == 1
        if kind == 3:
            return self._byte()
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            size = self._varint()
            if self.pos + size > len(self.data):
                raise ValueError("binary past the end")
            self.pos += size
            return _Binary(self.data[self.pos - size : self.pos], self.pos - size)
        if kind in (9, 10):
            header = self._byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self._varint()
            if size > len(self.data) - self.pos:
                raise ValueError("list longer than the footer")
            return [self._byte() == 1 if element in (1, 2) else self.value(element, depth + 1) for _ in range(size)]
        if kind == 11:
            size = self._varint()
            if size > len(self.data) - self.pos:
                raise ValueError("map longer than the footer")
            types = self._byte() if size else 0
            return {self.value(types >> 4, depth + 1): self.value(types & 0x0F, depth + 1) for _ in range(size)}
        if kind == 12:
            fields, last = {}, 0
            while (header := self._byte()) != 0:
                delta, field_kind = header >> 4, header & 0x0F
                last = last + delta if delta else self._zigzag()
                fields[last] = self.value(field_kind, depth + 1)
            return fields
        raise ValueError(f"unknown thrift type {kind}")


def _leaf_levels(schema: list) -> list[tuple[int, int]]:
    """(max definition level, max repetition level) of each leaf column of a Parquet schema, in order."""
    leaves: list[tuple[int, int]] = []

    def walk(index: int, definition: int, repetition: int, depth: int = 0) -> int:
        if depth > 64:
            raise ValueError("schema nested too deeply")
        element = schema[index]
        kind = element.get(3, 0) if index else 0  # the root's repetition does not count
        definition += kind in (1, 2)
        repetition += kind == 2
        children = element.get(5, 0)
        if not children:
            leaves.append((definition, repetition))
        index += 1
        for _ in range(children):
            if index >= len(schema):
                raise ValueError("schema ends early")
            index = walk(index, definition, repetition, depth + 1)
        return index

    if schema and walk(0, 0, 0) != len(schema):
        raise ValueError("schema has elements outside its root")
    return leaves


PARQUET_DATA_PAGES = (0, 3)  # PageType numbers of DATA_PAGE and DATA_PAGE_V2


def _check_pages(source: BinaryIO, meta: dict, end: int) -> None:
    """Walk a column chunk's page headers: the data pages' values must add up to the footer's num_values
    (pyarrow decodes every value a page declares, even past that count, and run lengths make billions of
    values from a few bytes) and the pages' sizes to at most the footer's total_uncompressed_size."""
    start, length = meta.get(11) or meta.get(9) or 0, meta.get(7, -1)  # the dictionary page comes first
    if start < 4 or length < 0 or start + length > end:
        raise ValueError("column chunk outside the file")
    source.seek(start)
    data = source.read(length)
    pos, values, unpacked = 0, 0, 0
    while pos < length:
        reader = _Thrift(data, pos)
        header = reader.value(12)
        stored, size = header.get(3, -1), header.get(2, -1)
        if stored < 0 or size < 0:
            raise ValueError("page without valid sizes")
        if header.get(1) in PARQUET_DATA_PAGES:
            values += (header.get(5) or header.get(8) or {}).get(1, 0)
        unpacked += reader.pos - pos + size
        pos = reader.pos + stored
    if pos != length or values != meta.get(5) or unpacked > meta.get(6, 0):
        raise ValueError(f"column chunk pages hold {values} values in {unpacked} bytes, not what the footer declares")


ARROW_SCHEMA_KEY = b"ARROW:schema"
HIDDEN_KEY = b"ARROW:hidden"  # as long as ARROW_SCHEMA_KEY: it replaces it in place, and pyarrow ignores it


class _HiddenKeys:
    """A Parquet member's file with its footer's ``ARROW:schema`` keys renamed, so that pyarrow reads the
    Parquet schema alone: readers MUST NOT depend on that key (FORMAT.md 6.2), and pyarrow, when it is
    present, builds types from it and fails on a value that is not a serialized Arrow schema."""

    def __init__(self, source: BinaryIO, keys: list[int]) -> None:
        self._source, self._keys = source, keys
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        start = self._source.tell()
        data = self._source.read(size)
        for at in self._keys:
            if start - len(HIDDEN_KEY) < at < start + len(data):
                patched = bytearray(data)
                for i, byte in enumerate(HIDDEN_KEY):
                    if 0 <= at - start + i < len(data):
                        patched[at - start + i] = byte
                data = bytes(patched)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        return self._source.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


def _check_parquet_footer(spool: Spool, name: str) -> list[int]:
    """Refuse, before pyarrow parses it, a footer that does not fit the member, whose column size
    statistics disagree with the schema (pyarrow aborts the whole process on those, it does not raise),
    or whose column chunks' pages hold other counts than it declares. Returns where the footer's
    ``ARROW:schema`` keys start in the member (for _HiddenKeys)."""
    source = spool.rewind()
    head = source.read(4)
    source.seek(max(spool.size - 8, 0))
    tail = source.read(8)
    length = struct.unpack("<I", tail[:4])[0] if len(tail) == 8 else 0
    if spool.size < 12 or head != b"PAR1" or tail[4:] != b"PAR1" or length > spool.size - 12:
        raise DamagedArchiveError(f"The archive is damaged: member {name} is not a complete Parquet file.")
    source.seek(spool.size - 8 - length)
    try:
        footer = _Thrift(source.read(length)).value(12)
        if footer.get(8) is not None:
            raise ValueError("it declares an encryption algorithm")
        leaves = _leaf_levels(footer.get(2) or [])
        counts = [footer.get(3, 0)]  # FileMetaData.num_rows, then each row group's and column chunk's sizes and counts
        for group in footer.get(4) or []:
            columns = group.get(1) or []
            if len(columns) != len(leaves):
                raise ValueError("row group without one chunk per column")
            counts += [group.get(2, 0), group.get(3, 0), group.get(6, 0)]
            for column, (definition, repetition) in zip(columns, leaves):
                if column.get(1) is not None or column.get(8) is not None or column.get(9) is not None:
                    raise ValueError("a column chunk is in another file or encrypted")
                meta = column.get(3) or {}
                counts += [meta.get(5, 0), meta.get(6, 0), meta.get(7, 0)]
                if meta.get(4, PARQUET_ZSTD) not in PARQUET_CODEC_IDS:
                    raise DamagedArchiveError(f"The archive is damaged: member {name} uses another codec than ZSTD.")
                sizes = meta.get(16) or {}
                for histogram, level in ((sizes.get(2), repetition), (sizes.get(3), definition)):
                    if histogram and len(histogram) != level + 1:
                        raise ValueError("size statistics do not match the schema")
                _check_pages(source, meta, spool.size - 8 - length)
        if any(not isinstance(n, int) or n < 0 for n in counts):
            raise ValueError("a negative size or row count")
        keys = [kv.get(1) for kv in footer.get(5) or [] if isinstance(kv, dict)]
        return [spool.size - 8 - length + key.at for key in keys if key == ARROW_SCHEMA_KEY]
    except (ValueError, AttributeError, TypeError) as exc:
        raise DamagedArchiveError(f"The archive is damaged: member {name} has an invalid Parquet footer ({exc}).") from None


def _check_unique_columns(names: list[str], name: str) -> None:
    """Readers that match columns by name cannot tell which of two same-named columns is meant."""
    seen: set[str] = set()
    for column in names:
        if column in seen:
            raise DamagedArchiveError(f"The archive is damaged: member {name} holds the column {column} twice.")
        seen.add(column)


def _read_parquet(spool: Spool, spec: Table, rows: int, name: str) -> pa.Table:
    schema_keys = _check_parquet_footer(spool, name)
    # pyarrow's own caps on the footer's strings and lists, lowered to what a member can hold.
    limits = {"thrift_string_size_limit": MAX_TABLE_MEMBER, "thrift_container_size_limit": 1 << 20}
    parquet = pq.ParquetFile(_HiddenKeys(spool.rewind(), schema_keys), pre_buffer=False, **limits)
    meta = parquet.metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    raw = sum(g.total_byte_size for g in groups)
    chunks = [g.column(c) for g in groups for c in range(g.num_columns)]
    stored = sum(c.total_compressed_size for c in chunks)
    decoded = sum(c.total_uncompressed_size for c in chunks)
    if any(c.compression not in PARQUET_CODECS for c in chunks):
        raise DamagedArchiveError(f"The archive is damaged: member {name} uses another codec than ZSTD.")
    if max(raw, decoded) > MAX_TABLE_RAW or stored > spool.size or meta.num_rows != rows:
        raise DamagedArchiveError(
            f"The archive is damaged: member {name} declares {rows} rows but holds {meta.num_rows} "
            f"({max(raw, decoded)} bytes decoded, {stored} stored)."
        )
    _check_unique_columns(parquet.schema_arrow.names, name)
    leaves = [parquet.schema.column(i) for i in range(meta.num_columns)]
    for group in groups:
        for c, leaf in enumerate(leaves):
            for encoding in set(group.column(c).encodings) & PARQUET_DELTA_STRINGS:
                if leaf.physical_type == "BYTE_ARRAY":
                    raise DamagedArchiveError(
                        f"The archive is damaged: member {name} encodes strings with {encoding}, which the format does not allow."
                    )
    # A decoded value takes up to 8 bytes (a number, or a string's offset and dictionary index), or its fixed
    # length, however few bits its encoding (RLE, dictionary, deltas) stored it in.
    widths = [max(8, leaf.length or 0) for leaf in leaves]
    if sum(g.column(c).num_values * widths[c] for g in groups for c in range(g.num_columns)) > MAX_TABLE_RAW:
        raise _decodes_too_large(name)
    # Strings are read as dictionaries, so a value repeated on every row is held once; _conform expands
    # them only after adding up what the expansion takes.
    strings = [leaf.path for leaf in leaves if leaf.physical_type == "BYTE_ARRAY"]
    parquet = pq.ParquetFile(
        _HiddenKeys(spool.rewind(), schema_keys), metadata=meta, read_dictionary=strings, pre_buffer=False, **limits
    )
    return parquet.read(columns=[n for n in parquet.schema_arrow.names if n in spec.schema.names], use_threads=False)


def decode_table(spool: Spool, spec: Table, rows: int | None, name: str) -> pa.Table:
    """The member's table, read on the calling thread alone (no pre-buffering, no threads).

    What pyarrow reads from a Python file or a ``py_buffer`` is Python's memory, which a pool thread frees
    by taking the GIL, after the read has returned; one still doing so when the interpreter exits is ended
    by Python inside a C++ destructor, and the process aborts (134, "terminate called without an active exception").
    """
    if spool.size > MAX_TABLE_MEMBER:
        raise DamagedArchiveError(f"The archive is damaged: table member {name} is larger than the format allows.")
    if rows is not None and rows > MAX_TABLE_ROWS:
        raise DamagedArchiveError(f"The archive is damaged: member {name} declares more than {MAX_TABLE_ROWS} rows.")
    try:
        if name.endswith(PARQUET_EXT):
            table = _read_parquet(spool, spec, rows, name)
        else:
            data = spool.read_all()
            _check_arrow_stream(data, name)
            with ipc.open_stream(pa.py_buffer(data), options=ipc.IpcReadOptions(use_threads=False)) as reader:
                _check_unique_columns(reader.schema.names, name)
                table = reader.read_all()
        # Offsets and lengths that point outside their buffers decode without complaint; anything that
        # touched them later could read out of bounds.
        table.validate(full=True)
        if table.num_rows != rows:
            raise DamagedArchiveError(f"The archive is damaged: member {name} declares {rows} rows but holds {table.num_rows}.")
        return _conform(table, spec, name)
    except MemoryError:  # pyarrow's ArrowMemoryError included: the machine's limit, not the archive's
        raise InsufficientMemoryError(
            f"Out of memory while decoding member {name}, which may take up to {MAX_TABLE_RAW} bytes "
            "(FORMAT.md 11); free memory or run on a machine with more, then try again."
        ) from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DamagedArchiveError(f"The archive is damaged: member {name} cannot be decoded ({one_line(exc, limit=200)}).") from None


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
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_COMPONENT for part in parts):
        raise UnwritableArchiveError(
            f"The archive holds an artifact whose path {path[:120]!r} has a component longer than {MAX_NAME_COMPONENT} "
            "bytes, which no file system can create; it was refused."
        )


class _EntryData:
    """The bytes of one inner tar entry: reads stop at the entry's size, a stream cut short is refused."""

    def __init__(self, tar: _InnerTar, size: int) -> None:
        self._tar, self.remaining = tar, size

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(COPY_CHUNK), b""))
        want = min(size, self.remaining)
        if want <= 0:
            return b""
        data = self._tar.read_exact(want)
        self.remaining -= len(data)
        return data


class _InnerTar:
    """A strict reader of the tar inside an artifact member (FORMAT.md 6.4): ustar or pax headers with
    checksums written as writers write them, regular files only, no GNU or global headers, zero padding,
    nothing but zeros after the end marker."""

    def __init__(self, stream: BoundedDecompressor, name: str) -> None:
        self._stream, self._name = stream, name

    def refuse(self, problem: str) -> DamagedArchiveError:
        return DamagedArchiveError(f"The archive is damaged: artifact member {self._name} {problem}.")

    def read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                raise self.refuse("holds a tar that is cut short")
            data += more
        return data

    def _header(self) -> bytes | None:
        block = self.read_exact(BLOCK)
        if not any(block):
            return None
        problem = header_problem(block)
        if problem:
            raise self.refuse(f"holds a tar header that {problem}")
        return block

    def _padding(self, size: int) -> None:
        if any(self.read_exact(-size % BLOCK)):
            raise self.refuse("holds non-zero tar padding")

    def entries(self) -> Iterator[tuple[str, _EntryData]]:
        while (block := self._header()) is not None:
            records: dict[str, str] = {}
            try:
                if block[156:157] == b"x":
                    pax_size = parse_octal(block[124:136], "size", 0)
                    if pax_size > MAX_PAX_HEADER:
                        raise self.refuse("holds a pax header larger than 64 KiB")
                    records = parse_pax(self.read_exact(pax_size), 0)
                    self._padding(pax_size)
                    block = self._header()
                    if block is None:
                        raise self.refuse("holds a pax header followed by no file")
                size = entry_size(records, block, 0, "an entry")
            except DamagedArchiveError as exc:
                if str(exc).startswith(f"The archive is damaged: artifact member {self._name}"):
                    raise
                raise self.refuse("holds a malformed tar header") from None
            path = entry_name(records, block)
            if block[156:157] not in (b"0", b"\0", b"7"):
                raise DamagedArchiveError(
                    f"Artifact member {self._name} holds {path[:80]!r}, which is not a regular file; it was refused."
                )
            if "\ufffd" in path and "path" not in records:
                raise self.refuse("holds a tar entry whose name is not UTF-8")
            data = _EntryData(self, size)
            yield path, data
            while data.read(COPY_CHUNK):
                pass
            self._padding(size)
        if self._header() is not None:
            raise self.refuse("holds a broken tar end-of-archive marker")
        while chunk := self._stream.read(COPY_CHUNK):
            if any(chunk):
                raise self.refuse("holds data after its tar end-of-archive marker")


def iter_artifacts(
    spool: Spool,
    raw_size: int | None,
    name: str,
    files: int | None = None,
    chunk_paths: set[str] | None = None,
) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (path, file object) for each file; links, devices and unsafe paths are refused, so is a path
    already seen in ``chunk_paths`` (the paths of the chunk's earlier artifact parts, which this call extends),
    and a path that is a folder of another (``a`` and ``a/b``: no extraction can write both).

    Once the last file is yielded, the declared ``raw_size`` and (if given) file count are checked.
    """
    if raw_size is None:
        raise DamagedArchiveError(f"The archive is damaged: artifact member {name} declares no size.")
    seen: set[str] = set()
    count = 0
    earlier = chunk_paths if chunk_paths is not None else set()
    tar = _InnerTar(BoundedDecompressor(spool.rewind(), raw_size, name), name)
    for path, data in tar.entries():
        check_artifact_path(path)
        if path in seen or path in earlier:
            raise UnwritableArchiveError(f"Artifact member {name} holds {path[:80]!r} twice; it was refused.")
        # Folders are kept in the same sets with a final "/", which no file path has.
        folders = [path[:i] for i, c in enumerate(path) if c == "/"]
        if path + "/" in seen or path + "/" in earlier or any(f in seen or f in earlier for f in folders):
            raise UnwritableArchiveError(
                f"Artifact member {name} holds {path[:80]!r} both as a file and as a folder of another file; it was refused."
            )
        seen.add(path)
        seen.update(f + "/" for f in folders)
        count += 1
        yield path, data
    earlier.update(seen)
    if files is not None and count != files:
        raise DamagedArchiveError(
            f"The archive is damaged: artifact member {name} declares {files} files but holds {count}."
        )


def extract_file(source: BinaryIO, root: Path, relative: str) -> Path:
    """Write one checked artifact under ``root``, never following a link that is already there."""
    check_artifact_path(relative)
    target = root.joinpath(*relative.split("/"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                out.write(chunk)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # the whole path: each component is checked against the format's limit
            raise ArchiveError(
                f"Cannot write the artifact {relative[:120]!r} under {root}: the path is longer than this file system "
                "allows, so running the command again fails the same way; use a folder with a shorter path."
            ) from None
        raise ArchiveError(
            f"Cannot write the artifact {relative[:120]!r} under {root} ({one_line(exc)}); "
            "what was written stays, and the same command finishes once that is fixed."
        ) from None
    return target
