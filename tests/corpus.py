"""The conformance corpus: small archives crafted from one valid base archive, each with its verdict.

``python tests/conformance/make_corpus.py`` writes them to tests/conformance/ (``<case>.mlar`` and
``verdicts.json``); tests/test_conformance.py reads each with the reference reader and checks the
verdict. A case is a function returning (archive bytes, verdict); add one to grow the corpus.

A verdict is ``{"section": "<FORMAT.md section>", "rule": "<what is tested>", "verdict": "accept",
"members": [names yielded], "ignored": [unknown members], "files": [artifact paths]}`` or ``{..., "verdict":
"refuse", "error": "<a phrase of the reference reader's message>"}``. A second implementation checks
accept/refuse and, for accepted archives, the members and files; the phrase is the reference reader's.
"""

from __future__ import annotations

import base64
import io
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from mlflow_archive.archive import ArchiveWriter
from mlflow_archive.container import BLOCK, MemberInfo
from mlflow_archive.members import ARROW_END, MAX_JSON_DEPTH, MAX_TABLE_ROWS, _FlatTable, _Thrift, encode_arrows, encode_parquet
from mlflow_archive.schemas import KEY_VALUE, TABLES
from samples import MTIME, R1, R2, R3, SAMPLE_HEADER, SAMPLE_TABLES, RawArchive, complete, end_archive, layout

BASE_TABLES = {"experiments": "experiments", "runs": "runs", "run_metrics": "runs", "traces": "traces", "spans": "traces"}
BASE_FILES = {f"{R1}/model/MLmodel": b"flavors: {}\n", f"{R1}/data.bin": bytes(range(256)) * 8, f"{R2}/empty.txt": b""}
ARTIFACTS = "runs/000001/artifacts-0001.tar.zst"
SPANS = "traces/000001/spans-0001.arrows"
TRACES = "traces/000001/traces-0001.arrows"
METRICS = "runs/000001/run_metrics-0001.parquet"
RUNS = "runs/000001/runs-0001.parquet"
EXPERIMENTS = "experiments/000001/experiments-0001.parquet"


@dataclass
class Base:
    data: bytes
    members: list[MemberInfo]  # trailer last
    payloads: list[bytes]  # each member's stored bytes, in archive order


def build_base() -> Base:
    """A conforming archive: Parquet and Arrow tables, one artifact member whose entries start with the
    owner's run ID, header and trailer as the reference writer writes them."""
    stream = io.BytesIO()
    writer = ArchiveWriter(stream, SAMPLE_HEADER, MTIME)
    chunks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for table, section in BASE_TABLES.items():
            chunk = chunks.setdefault(section, writer.chunk(section))
            rows = [complete(table, r) for r in SAMPLE_TABLES[table][0][:2 if table == "spans" else 1]]
            chunk.write_table(table, {name: [r[name] for r in rows] for name in rows[0]})
            if table == "run_metrics":
                with chunk.artifacts() as sink:
                    for path, content in BASE_FILES.items():
                        local = Path(tmp) / path
                        local.parent.mkdir(parents=True, exist_ok=True)
                        local.write_bytes(content)
                        sink.add(path, local)
        writer.close()
    data = stream.getvalue()
    return Base(data, list(writer.members), [data[r.start : r.end] for r in layout(data) if r.kind == "data"])


def zstd_size(payload: bytes) -> int | None:
    try:
        return len(zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=True).read())
    except zstandard.ZstdError:
        return None


def rebuild(base: Base, payloads: list[bytes], order: list[int] | None = None) -> bytes:
    """The base's members with other stored bytes, hashes recomputed (and raw_size, for zstd members that
    still decompress), in ``order``; a fresh trailer."""
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    for i in order if order is not None else range(len(payloads) - 1):
        info, payload = base.members[i], payloads[i]
        raw_size = info.raw_size if info.raw_size is None else (zstd_size(payload) or info.raw_size)
        raw.add(info.name, payload, rows=info.rows, raw_size=raw_size)
    return raw.finish()


def recompress(payload: bytes, mutate) -> bytes:
    """A zstd member whose decompressed bytes went through ``mutate``."""
    return zstandard.ZstdCompressor().compress(mutate(zstandard.ZstdDecompressor().decompressobj().decompress(payload)))


# -- Building cases ------------------------------------------------------------------------

def _with(base: Base, replace: dict[str, bytes] | None = None, extra: list[tuple] = (), **add_options) -> bytes:
    """The base with some members' payloads replaced and ``extra`` (name, payload, rows, raw_size) members
    inserted after the member they name as ``after``; ``add_options`` (``rows`` among them) go to the named
    member's RawArchive.add."""
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    for info, payload in zip(base.members[:-1], base.payloads):
        payload = (replace or {}).get(info.name, payload)
        raw_size = info.raw_size if info.raw_size is None else zstd_size(payload)
        raw.add(info.name, payload, **{"rows": info.rows, "raw_size": raw_size, **add_options.get(info.name, {})})
        for name, extra_payload, rows, raw_size, after in extra:
            if after == info.name:
                raw.add(name, extra_payload, rows=rows, raw_size=raw_size)
    return raw.finish()


def _payload(base: Base, name: str) -> bytes:
    return base.payloads[[m.name for m in base.members].index(name)]


def _inner(entries: list[tarfile.TarInfo | tuple[str, bytes]], tar_format=tarfile.PAX_FORMAT, **options) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format, **options) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry, io.BytesIO(b"x" * entry.size))
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


def _replace_artifacts(base: Base, tar_bytes: bytes, rows: int) -> bytes:
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    for info, payload in zip(base.members[:-1], base.payloads):
        if info.name == ARTIFACTS:
            raw.add(info.name, zstandard.ZstdCompressor().compress(tar_bytes), rows=rows, raw_size=len(tar_bytes))
        else:
            raw.add(info.name, payload, rows=info.rows, raw_size=info.raw_size)
    return raw.finish()


def _reheader(block: bytes, **fields: bytes) -> bytes:
    """A ustar header block with some fields replaced ({offset}_{length}=bytes) and its checksum recomputed."""
    h = bytearray(block)
    for key, value in fields.items():
        offset = int(key.split("_")[1])
        h[offset : offset + len(value)] = value
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _header_json(base: Base, raw_json: bytes) -> bytes:
    return _with(base, {"header.json.zst": zstandard.ZstdCompressor().compress(raw_json)})


def _base_header(base: Base) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(base.payloads[0])


def _arrow_messages(data: bytes) -> list[tuple[int, int, int]]:
    """(start, metadata length, body length) of each message of an Arrow IPC stream."""
    out, pos = [], 0
    while True:
        length = struct.unpack_from("<i", data, pos + 4)[0]
        if length == 0:
            return out
        metadata = data[pos + 8 : pos + 8 + length]
        body = _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0]).scalar(3, "<q")
        out.append((pos, length, body))
        pos += 8 + length + body


def _spans_with_declared_size(data: bytes, declared: int) -> bytes:
    """The first compressed buffer of the first record batch declares ``declared`` decompressed bytes."""
    start, length, _ = _arrow_messages(data)[1]
    metadata = data[start + 8 : start + 8 + length]
    batch = _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0]).table(2)
    offset = next(o for o, size in batch.structs(2, "<qq") if size)
    at = start + 8 + length + offset
    return data[:at] + struct.pack("<q", declared) + data[at + 8 :]


def _accept(base: Base, section: str, rule: str, data: bytes, ignored=(), files=None, members=None) -> tuple:
    names = members if members is not None else [m.name for m in base.members[1:-1]]
    return data, {"section": section, "rule": rule, "verdict": "accept", "members": list(names),
                  "ignored": list(ignored), "files": sorted(files if files is not None else BASE_FILES)}


def _refuse(section: str, rule: str, data: bytes, error: str) -> tuple:
    return data, {"section": section, "rule": rule, "verdict": "refuse", "error": error}


def cases(base: Base) -> dict[str, tuple[bytes, dict]]:
    spans, metrics = _payload(base, SPANS), _payload(base, METRICS)
    header = orjson.loads(_base_header(base))
    long_name = f"{R1}/" + "d" * 120 + "/file.txt"
    base256 = bytearray(_inner([(f"{R1}/a.txt", b"abc")], tarfile.USTAR_FORMAT))
    base256[:BLOCK] = _reheader(bytes(base256[:BLOCK]), size_124=b"\x80" + (3).to_bytes(11, "big"))
    contiguous = tarfile.TarInfo(f"{R1}/contiguous.bin")
    contiguous.type, contiguous.size = tarfile.CONTTYPE, 5
    unknown_stem = "runs/000001/notes-0001.parquet"
    zero_chunk = "runs/000000/runs-0001.parquet"
    dictionary = pa.table({"trace_id": pa.array(["a", "a"]).dictionary_encode()})
    two_frames = zstandard.ZstdCompressor().compress(_base_header(base)[:10]) + zstandard.ZstdCompressor().compress(
        _base_header(base)[10:])
    return {
        "base": _accept(base, "1", "a conforming archive", base.data),
        "unknown_member": _accept(base, "10.3", "a member of an unknown stem is verified and skipped",
                                  _with(base, extra=[(unknown_stem, b"PAR1", 0, None, METRICS)]),
                                  ignored=[unknown_stem],
                                  members=[m.name for m in base.members[1:-1]]),
        "comment_unknown_key": _accept(base, "2.4", "an unknown key in the member comment is ignored",
                                       _with(base, **{METRICS: {"comment_extra": " future=1"}})),
        "json_concatenated_frames": _accept(base, "6.1", "a JSON member of two zstd frames",
                                            _with(base, {"header.json.zst": two_frames})),
        "artifact_owner_without_row": _accept(
            base, "6.4", "a file of an owner with no row in the chunk is read (importers ignore it)",
            _replace_artifacts(base, _inner([("0" * 32 + "/x.txt", b"x")]), 1), files=["0" * 32 + "/x.txt"]),
        "artifact_owner_only": _accept(
            base, "6.4", "an entry named by the owner ID alone is read (importers ignore it)",
            _replace_artifacts(base, _inner([(R1, b"x")]), 1), files=[R1]),
        "artifact_pax_long_name": _accept(base, "6.4", "a pax path record for a long entry name",
                                          _replace_artifacts(base, _inner([(long_name, b"x")]), 1), files=[long_name]),
        "artifact_contiguous_file": _accept(base, "6.4", "typeflag 7 is a regular file",
                                            _replace_artifacts(base, _inner([contiguous]), 1), files=[contiguous.name]),
        "artifact_cut_short": _refuse("6.4", "an inner tar cut short, hashes and sizes consistent",
                                      _replace_artifacts(base, _inner([(f"{R1}/a.txt", b"a" * 2000)])[:1024], 1),
                                      "holds a tar that is cut short"),
        "artifact_gnu_long_name": _refuse("6.4", "a GNU long-name (L) entry",
                                          _replace_artifacts(base, _inner([(long_name, b"x")], tarfile.GNU_FORMAT), 1),
                                          "holds a tar header that is not a POSIX ustar header"),
        "artifact_global_header": _refuse("6.4", "a pax global header (g)",
                                          _replace_artifacts(base, _inner([(f"{R1}/a.txt", b"x")], pax_headers={"c": "d"}), 1),
                                          "which is not a regular file"),
        "artifact_base256_size": _refuse("6.4", "a base-256 size field", _replace_artifacts(base, bytes(base256), 1),
                                         "holds a malformed tar header"),
        "artifact_after_end_marker": _refuse("6.4", "non-zero bytes after the inner end-of-archive marker",
                                             _replace_artifacts(base, _inner([(f"{R1}/a.txt", b"x")]) + b"\1" * 512, 1),
                                             "after its tar end-of-archive marker"),
        "artifact_path_in_two_parts": _refuse(
            "6.4", "the same path in two artifact parts of one chunk",
            _with(base, extra=[("runs/000001/artifacts-0002.tar.zst", *_zstd_tar([(f"{R1}/data.bin", b"y")]), ARTIFACTS)]),
            "twice"),
        "comment_repeated_key": _refuse("2.4", "a key twice in the member comment",
                                        _with(base, **{METRICS: {"comment_extra": " rows=3"}}), "malformed header"),
        "comment_field_without_equals": _refuse("2.4", "a field without '='",
                                                _with(base, **{METRICS: {"comment_extra": " orphan"}}), "malformed header"),
        "comment_double_space": _refuse("2.4", "an empty field (two spaces)",
                                        _with(base, **{METRICS: {"comment_extra": "  x=1"}}), "malformed header"),
        "comment_index_overflow": _refuse("2.4", "an index above 2**63-1",
                                          _with(base, **{METRICS: {"index": 2**64 + 2}}), "malformed header"),
        "header_duplicate_key": _refuse("6.1", "a JSON object with a key twice",
                                        _header_json(base, _base_header(base)[:-1] + b',"format":"other"}'),
                                        "is not valid JSON"),
        "header_version_float": _refuse("8", "reader_version 1.0 is not an integer",
                                        _header_json(base, orjson.dumps({**header, "reader_version": 1.0})),
                                        "no valid reader_version"),
        "header_version_true": _refuse("8", "reader_version true is not an integer",
                                       _header_json(base, orjson.dumps({**header, "reader_version": True})),
                                       "no valid reader_version"),
        "header_nan": _refuse("6.1", "NaN is not JSON", _header_json(base, _base_header(base)[:-1] + b',"x":NaN}'),
                              "is not valid JSON"),
        "header_nested_64_levels": _accept(base, "6.1", "JSON nested 64 levels deep, the limit",
                                           _header_nested(base, MAX_JSON_DEPTH)),
        "header_nested_65_levels": _refuse("6.1", "JSON nested one level deeper than the limit",
                                           _header_nested(base, MAX_JSON_DEPTH + 1), "nested more than 64 levels deep"),
        "header_nested_100000_levels": _refuse("6.1", "JSON nested 100,000 levels deep (a recursive parser overflows)",
                                               _header_nested(base, 100_000), "nested more than 64 levels deep"),
        "trailer_nested_100000_levels": _refuse("6.1", "trailer JSON nested 100,000 levels deep",
                                                _trailer_nested(base, 100_000), "nested more than 64 levels deep"),
        "descriptive_fields_of_other_types": _accept(
            base, "8", "writer, source, export and counts that are not objects are displayed as empty",
            _descriptive_of_other_types(base)),
        "trailer_size_float": _refuse("9", "a trailer size written 123.0", _trailer_with_float_size(base),
                                      "trailer does not list"),
        "chunk_zero": _refuse("4", "chunk number 000000",
                              _with(base, extra=[(zero_chunk, metrics, 3, None, "header.json.zst")]), "chunk or part number 0"),
        "arrow_without_end_marker": _refuse("6.3", "an Arrow stream without its end-of-stream marker",
                                            _with(base, {SPANS: spans[: -len(ARROW_END)]}), "without its end-of-stream marker"),
        "arrow_bytes_after_end": _refuse("6.3", "bytes after the end-of-stream marker",
                                         _with(base, {SPANS: spans + b"\0" * 8}), "after its end-of-stream marker"),
        "arrow_dictionary_batch": _refuse("6.3", "a dictionary batch",
                                          _with(base, {SPANS: encode_arrows(dictionary).read_all()}),
                                          "other than one schema followed by record batches"),
        "arrow_declared_too_large": _refuse("6.3", "a buffer declaring 2 GiB decompressed",
                                            _with(base, {SPANS: _spans_with_declared_size(spans, 2 << 30)}),
                                            "more bytes than the format allows"),
        "arrow_declared_other_than_frame": _refuse(
            "6.3", "a buffer declaring 300 MiB decompressed whose zstd frame says otherwise",
            _with(base, {SPANS: _spans_with_declared_size(spans, 300 << 20)}), "another buffer size than its zstd frame"),
        "parquet_snappy": _refuse("6.2", "a Parquet column compressed with SNAPPY",
                                  _with(base, {METRICS: _parquet(base, METRICS, compression="snappy")}),
                                  "another codec than ZSTD"),
        "parquet_uncompressed": _accept(base, "6.2", "uncompressed Parquet pages",
                                        _with(base, {METRICS: _parquet(base, METRICS, compression="none")})),
        "arrow_lz4": _refuse("6.3", "Arrow buffers compressed with LZ4_FRAME",
                             _with(base, {SPANS: _arrows(base, SPANS, compression="lz4")}), "another codec than ZSTD"),
        "arrow_uncompressed": _accept(base, "6.3", "uncompressed Arrow buffers",
                                      _with(base, {SPANS: _arrows(base, SPANS, compression=None)})),
        "parquet_histogram_mismatch": _refuse(
            "6.2", "a column's definition-level histogram longer than its schema allows (pyarrow aborts on it)",
            _with(base, {RUNS: _longer_histogram(_payload(base, RUNS))}), "size statistics do not match the schema"),
        "parquet_dictionary_bomb": _refuse(
            "6.2", "a 64 KiB string dictionary-encoded on 2**16 rows: a few KiB that decode to 4 GiB",
            runs_named(base, 1 << 16, 1 << 16),
            "decodes to more than 1073741824 bytes"),
        "parquet_too_many_rows": _refuse(
            "6.2", "one run-length-encoded integer on 2**24 + 1 rows, more than a member may hold",
            _with(base, {RUNS: _parquet_of(pa.table({"start_time": pa.repeat(pa.scalar(1, pa.int64()), MAX_TABLE_ROWS + 1)}))},
                  **{RUNS: {"rows": MAX_TABLE_ROWS + 1}}),
            "declares more than 16777216 rows"),
        "parquet_page_values_past_footer": _refuse(
            "6.2", "a list column whose page holds 5 values where the footer's num_values says 4",
            _with(base, {EXPERIMENTS: _five_tags_footer_says_four(base)}), "not what the footer declares"),
        "parquet_delta_byte_array": _refuse(
            "6.2", "strings encoded DELTA_BYTE_ARRAY, whose values share prefixes of unbounded length",
            _with(base, {RUNS: _parquet_of(_table(base, RUNS), use_dictionary=False,
                                           column_encoding={"run_id": "DELTA_BYTE_ARRAY"})}),
            "encodes strings with DELTA_BYTE_ARRAY"),
        "parquet_duplicate_column": _refuse(
            "7", "a column name twice", _with(base, {RUNS: _parquet_of(_twice(_table(base, RUNS), "run_id"))}),
            "holds the column run_id twice"),
        "arrow_duplicate_column": _refuse(
            "7", "a column name twice", _with(base, {SPANS: encode_arrows(_twice(_table(base, SPANS), "span_id")).read_all()}),
            "holds the column span_id twice"),
        "arrow_string_view": _accept(
            base, "7", "a string_view column converts to string",
            _with(base, {SPANS: encode_arrows(_as_type(_table(base, SPANS), "name", pa.string_view())).read_all()})),
        "arrow_string_view_bomb": _refuse(
            "6.3", "2**12 string views of one 1 MiB value: a few KiB stored, 4 GiB as string",
            spans_named(base, 1 << 12, 1 << 20),
            "decodes to more than 1073741824 bytes"),
        "arrow_list_view": _refuse(
            "7", "a list_view column (views may share elements: no bound on the list a cast builds)",
            _with(base, {TRACES: encode_arrows(_with_list_view(_table(base, TRACES), "tags")).read_all()}),
            "is not allowed"),
        "object_twice_in_member": _refuse("12.2", "one run ID in two rows of one runs member",
                                          _with(base, {RUNS: _rows(base, RUNS, 2)}, **{RUNS: {"rows": 2}}),
                                          "two runs rows with run_id"),
        "object_in_two_chunks": _refuse(
            "12.2", "one run ID in the runs members of two chunks",
            _with(base, extra=[("runs/000002/runs-0001.parquet", _payload(base, RUNS), 1, None, ARTIFACTS)]),
            "two runs rows with run_id"),
        "param_key_twice": _refuse(
            "12.2", "one parameter key twice for one run in a chunk's run_params",
            _with(base, extra=[("runs/000001/run_params-0001.parquet",
                                _member_rows("run_params", [{"run_id": R1, "key": "k", "value": v} for v in "ab"]),
                                2, None, RUNS)]),
            "two run_params rows with run_id"),
        "assessment_twice": _refuse(
            "12.2", "one assessment ID in two rows of a trace's assessments",
            _with(base, extra=[("traces/000001/assessments-0001.arrows",
                                _member_rows("assessments", [complete("assessments", {**SAMPLE_TABLES["assessments"][0][0],
                                                                                      "name": n}) for n in "ab"]),
                                2, None, SPANS)]),
            "two assessments rows with assessment_id"),
        "tag_key_twice_in_row": _refuse(
            "12.2", "one key twice in an experiment's tags list",
            _with(base, {EXPERIMENTS: _tags_twice(base)}), "name the key 'k' twice"),
        "artifact_component_too_long": _refuse(
            "6.4", "an entry name with a 300-byte component",
            _replace_artifacts(base, _inner([(f"{R1}/" + "n" * 300, b"x")]), 1), "longer than 255 bytes"),
        "artifact_file_and_folder": _refuse(
            "6.4", "an entry that is a file and the folder of another entry",
            _replace_artifacts(base, _inner([(f"{R1}/a", b"x"), (f"{R1}/a/b", b"y")]), 2), "both as a file and as a folder"),
        "artifact_file_and_folder_in_two_parts": _refuse(
            "6.4", "an entry of one artifact part that is a folder of an entry of the chunk's earlier part",
            _with(base, extra=[("runs/000001/artifacts-0002.tar.zst", *_zstd_tar([(f"{R1}/data.bin/x", b"y")]), ARTIFACTS)]),
            "both as a file and as a folder"),
        "parquet_arrow_schema_garbage": _accept(
            base, "6.2", "an ARROW:schema key whose value is not base64 is read as if absent",
            _with(base, {METRICS: _with_arrow_schema(base, METRICS, "not base64!")})),
        "parquet_arrow_schema_foreign": _accept(
            base, "6.2", "an ARROW:schema key declaring other types than the Parquet schema is read as if absent",
            _with(base, {METRICS: _with_arrow_schema(base, METRICS, _foreign_arrow_schema(base, METRICS))})),
        "json_last_frame_incomplete": _refuse(
            "6", "a JSON member whose last zstd frame lacks its content checksum (content complete)",
            _with(base, {"header.json.zst": _without_checksum(_base_header(base))}), "not one or more complete zstd frames"),
        "artifact_last_frame_incomplete": _refuse(
            "6", "an artifact member whose last zstd frame lacks its content checksum (content complete)",
            _with(base, {ARTIFACTS: _without_checksum(_unzstd(_payload(base, ARTIFACTS)))}),
            "not one or more complete zstd frames"),
        "json_skippable_frames": _accept(base, "6", "skippable frames before and after a JSON member's frame",
                                         _with(base, {"header.json.zst": _skippable(_payload(base, "header.json.zst"))})),
        "artifact_skippable_frames": _accept(base, "6", "skippable frames before and after an artifact member's frame",
                                             _with(base, {ARTIFACTS: _skippable(_payload(base, ARTIFACTS))})),
        "header_name_bytes_after_nul": _accept(
            base, "2.2", "a byte after the NUL that ends a member's ustar name (the name ends at its first NUL)",
            _patch_header(base.data, METRICS, **{f"name_{len(METRICS) + 1}": b"Z"})),
        "header_prefix_bytes_after_nul": _accept(
            base, "2.2", "bytes after the NUL that ends an empty ustar prefix", _patch_header(base.data, METRICS, prefix_346=b"Z")),
        "header_block_bytes_500_511": _accept(
            base, "2.2", "non-zero bytes 500-511 of a member header block", _patch_header(base.data, METRICS, pad_500=b"Z" * 12)),
        "pax_block_prefix": _accept(
            base, "2.2", "a pax header block with a prefix", _patch_header(base.data, METRICS, pax=True, prefix_345=b"junk")),
        "artifact_name_bytes_after_nul": _accept(
            base, "6.4", "a byte after the NUL that ends an inner tar entry's ustar name",
            _replace_artifacts(base, _inner_patched([(f"{R1}/a.txt", b"abc")], **{f"name_{len(R1) + 7}": b"Z"}), 1),
            files=[f"{R1}/a.txt"]),
        "order_tables_in_chunk": _accept(
            base, "5.3", "a chunk's tables out of the listed order (run_metrics before runs)",
            rebuild(base, base.payloads, [0, 1, 3, 2, 4, 5, 6]), members=[base.members[i].name for i in (1, 3, 2, 4, 5, 6)]),
        "order_part_number_gap": _accept(
            base, "5.3", "a table's parts numbered from 0002", _renamed(base, {METRICS: METRICS.replace("-0001", "-0002")}),
            members=[m.name.replace("run_metrics-0001", "run_metrics-0002") for m in base.members[1:-1]]),
        "order_chunk_number_gap": _accept(
            base, "5.3", "a section's chunks numbered from 000002",
            _renamed(base, {TRACES: TRACES.replace("000001", "000002"), SPANS: SPANS.replace("000001", "000002")}),
            members=[m.name.replace("traces/000001", "traces/000002") for m in base.members[1:-1]]),
        "artifacts_of_ownerless_section": _accept(
            base, "10.3", "an artifact member of the traces section (owner: none) is unknown, even when damaged",
            _with(base, extra=[("traces/000001/artifacts-0001.tar.zst", b"not zstd", 1, 100, SPANS)]),
            ignored=["traces/000001/artifacts-0001.tar.zst"]),
        "key_value_null_key": _refuse(
            "7", "a null key in a non-null item of a key-value list (a nullable key field)",
            _with(base, {EXPERIMENTS: _parquet_of(_tags(base, [{"key": None, "value": "v"}], NULLABLE_KEY_VALUE))}),
            "holds a null key"),
        "key_value_null_key_arrow": _refuse(
            "7", "a null key in a key-value list of an Arrow member",
            _with(base, {TRACES: encode_arrows(_rows_like(base, TRACES, 1, tags=pa.array(
                [[{"key": None, "value": "v"}]], NULLABLE_KEY_VALUE))).read_all()}), "holds a null key"),
        "key_value_null_item": _accept(
            base, "7", "a null item in a key-value list", _with(base, {EXPERIMENTS: _parquet_of(_tags(base, [None, {"key": "k", "value": "v"}]))})),
        "key_value_nullable_key_field": _accept(
            base, "7", "a key-value list whose key field is nullable, without nulls",
            _with(base, {EXPERIMENTS: _parquet_of(_tags(base, [{"key": "k", "value": "v"}], NULLABLE_KEY_VALUE))})),
        "parquet_optional_without_nulls": _accept(
            base, "6.2", "every column OPTIONAL, the non-nullable ones without nulls",
            _with(base, {RUNS: _parquet_of(_all_nullable(_table(base, RUNS)))})),
        "table_member_without_rows": _accept(
            base, "5.2", "a table member of 0 rows", _with(base, extra=[(
                "runs/000001/run_params-0001.parquet", _member_rows("run_params", []), 0, None, RUNS)]),
            members=[*(m.name for m in base.members[1:3]), "runs/000001/run_params-0001.parquet",
                     *(m.name for m in base.members[3:-1])]),
        "artifact_member_without_files": _accept(
            base, "5.2", "an artifact member of 0 files", _replace_artifacts(base, _inner([]), 0), files=[]),
        "detail_without_object_in_chunk": _accept(
            base, "5.4", "a run_params row whose run has no runs row in the chunk", _with(base, extra=[(
                "runs/000001/run_params-0001.parquet", _member_rows("run_params", [{"run_id": R3, "key": "k", "value": "v"}]),
                1, None, RUNS)]),
            members=[*(m.name for m in base.members[1:3]), "runs/000001/run_params-0001.parquet",
                     *(m.name for m in base.members[3:-1])]),
        "values_outside_their_lists": _accept(
            base, "7", "values that break descriptive statements: runs.status WEIRD, attributes_json not JSON, span_id zz",
            _with(base, {RUNS: _parquet_of(_rows_like(base, RUNS, 1, status=pa.array(["WEIRD"]))),
                         SPANS: encode_arrows(_rows_like(base, SPANS, 1, span_id=pa.array(["zz"]),
                                                         attributes_json=pa.array(["not JSON"]))).read_all()},
                  **{SPANS: {"rows": 1}})),
        "header_writer_version_below_reader": _accept(
            base, "8", "writer_version 1 with reader_version 2 (writer_version is descriptive)",
            _header_json(base, orjson.dumps({**header, "reader_version": 2, "writer_version": 1}, option=orjson.OPT_SORT_KEYS))),
        "convert_struct_extra_field": _refuse(
            "7", "a key-value struct with a field more (a cast would drop it)",
            _with(base, {EXPERIMENTS: _parquet_of(_tags(base, [{"key": "k", "value": "v", "extra": "x"}], pa.list_(pa.struct(
                [pa.field("key", pa.string()), pa.field("value", pa.string()), pa.field("extra", pa.string())]))))}),
            "has type"),
        "convert_digits_as_string": _refuse(
            "7", "an int64 column written as digit strings", _with(base, {RUNS: _parquet_of(_as_type(_table(base, RUNS), "start_time", pa.string()))}),
            "has type"),
        "convert_number_as_string_column": _refuse(
            "7", "a string column written as int64",
            _with(base, {RUNS: _parquet_of(_rows_like(base, RUNS, 1, run_name=pa.array([7], pa.int64())))}), "has type"),
        "convert_binary_utf8": _accept(
            base, "7", "a string column written as binary holding UTF-8",
            _with(base, {RUNS: _parquet_of(_as_type(_table(base, RUNS), "run_name", pa.binary()))})),
        "convert_binary_invalid_utf8": _refuse(
            "6.2", "a string column written as binary holding a byte that is not UTF-8",
            _with(base, {RUNS: _parquet_of(_rows_like(base, RUNS, 1, run_name=pa.array([b"\xff"], pa.binary())))}), "has type"),
        "convert_narrower_numbers": _accept(
            base, "7", "an int64 column written as integral doubles, a string column as large_string",
            _with(base, {RUNS: _parquet_of(_as_type(_as_type(_table(base, RUNS), "start_time", pa.float64()),
                                                    "experiment_id", pa.large_string()))})),
        "parquet_negative_total_byte_size": _refuse(
            "6.2", "a row group's total_byte_size negative", _with(base, {RUNS: _negative_row_group_size(_payload(base, RUNS))}),
            "a negative size or row count"),
        "parquet_column_in_another_file": _refuse(
            "6.2", "a column chunk with a file_path", _with(base, {RUNS: _column_file_path(_payload(base, RUNS))}),
            "in another file or encrypted"),
        "parquet_encryption_algorithm": _refuse(
            "6.2", "a plaintext footer with an encryption_algorithm", _with(base, {RUNS: _encryption_algorithm(_payload(base, RUNS))}),
            "encryption algorithm"),
        "artifact_tar_not_padded": _accept(
            base, "6.4", "an inner tar ending with its two zero blocks, not padded to 10240 bytes",
            _replace_artifacts(base, _inner([(f"{R1}/a.txt", b"abc")])[: 3 * BLOCK] + bytes(2 * BLOCK), 1), files=[f"{R1}/a.txt"]),
        "artifact_pax_twice": _refuse(
            "6.4", "two pax headers in a row", _replace_artifacts(base, _pax_twice(_inner([(long_name, b"x")])), 1), "not a regular file"),
        "artifact_pax_then_end": _refuse(
            "6.4", "a pax header followed by the end-of-archive marker",
            _replace_artifacts(base, _inner([(long_name, b"x")])[: 2 * BLOCK] + bytes(10240 - 2 * BLOCK), 0), "followed by no file"),
        "pax_empty_keyword": _accept(base, "2.3", "a pax record with an empty keyword is ignored",
                                     _with(base, **{METRICS: {"records": {"": "value"}}})),
        "comment_value_tab": _accept(base, "2.4", "an unknown comment key whose value holds a TAB",
                                     _with(base, **{METRICS: {"comment_extra": " future=a\tb"}})),
        "comment_empty_value": _accept(base, "2.4", "an unknown comment key with an empty value",
                                       _with(base, **{METRICS: {"comment_extra": " future="}})),
        "header_huge_number_and_lone_surrogate": _accept(
            base, "6.1", "JSON numbers beyond a double and an escaped lone surrogate",
            _header_json(base, _base_header(base)[:-1] + b',"x":1e999,"y":"\\ud800"}')),
        # These follow archive.READER_VERSION: each new format version adds the case above it and accepts the last.
        "header_reader_version_4": _accept(base, "10.1", "reader_version 4, below the current version",
                                           _header_json(base, orjson.dumps({**header, "reader_version": 4, "writer_version": 4}))),
        "header_reader_version_5": _accept(base, "10.1", "reader_version 5, the current version",
                                           _header_json(base, orjson.dumps({**header, "reader_version": 5, "writer_version": 5}))),
        "header_reader_version_6": _refuse("10.1", "reader_version 6, above the current version",
                                           _header_json(base, orjson.dumps({**header, "reader_version": 6, "writer_version": 6})),
                                           "needs format reader version 6"),
        "arrow_compressed_buffer_of_4_bytes": _refuse(
            "6.3", "a compressed buffer of 4 bytes, too short for its 8-byte length prefix",
            _with(base, {SPANS: _spans_with_buffer_length(spans, 4)}), "too short for its length prefix"),
        "arrow_metadata_not_aligned": _refuse(
            "6.3", "a schema message whose metadata length is not a multiple of 8 (pyarrow 26 reads it)",
            _with(base, {SPANS: _schema_metadata_unaligned(spans)}), "malformed message frame"),
        "parquet_footer_too_long": _refuse("6.2", "a footer length beyond the file",
                                           _with(base, {METRICS: metrics[:-8] + struct.pack("<I", len(metrics)) + b"PAR1"}),
                                           "not a complete Parquet file"),
    }


def _table(base: Base, name: str) -> pa.Table:
    payload = pa.py_buffer(_payload(base, name))
    return pq.read_table(payload) if name.endswith(".parquet") else pa.ipc.open_stream(payload).read_all()


def runs_named(base: Base, rows: int, name_length: int) -> bytes:
    """The base with ``rows`` runs all named by one string of ``name_length`` bytes, which the Parquet member
    stores once (dictionary-encoded), as the generator holds it."""
    name = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), rows), pa.array(["r" * name_length]))
    run_ids = pa.array([f"{i:032x}" for i in range(rows)])  # each run once (FORMAT.md 12.2)
    return _with(base, {RUNS: _parquet_of(_rows_like(base, RUNS, rows, run_id=run_ids, run_name=name))}, **{RUNS: {"rows": rows}})


def spans_named(base: Base, rows: int, name_length: int) -> bytes:
    """The base with ``rows`` spans all named by one string of ``name_length`` bytes, which the Arrow member
    stores once: every string_view of the column points at it."""
    value = b"s" * name_length
    view = struct.pack("<i4sii", len(value), value[:4], 0, 0)  # length, prefix, buffer index, offset
    name = pa.Array.from_buffers(pa.string_view(), rows, [None, pa.py_buffer(view * rows), pa.py_buffer(value)])
    return _with(base, {SPANS: encode_arrows(_rows_like(base, SPANS, rows, name=name)).read_all()}, **{SPANS: {"rows": rows}})


def _rows_like(base: Base, member: str, rows: int, **columns: pa.Array) -> pa.Table:
    """``rows`` copies of the first row of the base's ``member``, with some columns given instead."""
    first = _table(base, member)
    return pa.table({c: columns.get(c, pa.repeat(first.column(c)[0], rows)) for c in first.column_names})


def _twice(table: pa.Table, column: str) -> pa.Table:
    return table.append_column(column, table.column(column))


def _as_type(table: pa.Table, column: str, kind: pa.DataType) -> pa.Table:
    index = table.column_names.index(column)
    return table.set_column(index, column, table.column(column).cast(kind))


def _with_list_view(table: pa.Table, column: str) -> pa.Table:
    lists = table.column(column).combine_chunks()
    views = pa.ListViewArray.from_arrays(lists.offsets[:-1], pc.list_value_length(lists).fill_null(0), lists.values)
    return table.set_column(table.column_names.index(column), column, views)


def _five_tags_footer_says_four(base: Base) -> bytes:
    """The experiment with five tags, the footer's num_values of its first tags leaf chunk lowered to 4
    (Thrift compact: field delta 1, type i64, zigzag varint 10 -> 8)."""
    tags = pa.array([[{"key": f"k{i}", "value": "v"} for i in range(5)]], KEY_VALUE)
    data = _parquet_of(_rows_like(base, EXPERIMENTS, 1, tags=tags))
    at = data.index(b"\x16\x0a", len(data) - 8 - struct.unpack("<I", data[-8:-4])[0])
    data = data[:at] + b"\x16\x08" + data[at + 2 :]
    assert pq.ParquetFile(pa.py_buffer(data)).metadata.row_group(0).column(6).num_values == 4  # tags' keys
    return data


def _parquet_of(table: pa.Table, **options) -> bytes:
    """``table`` as one Parquet row group, without the Arrow schema hint (so strings read back as strings)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=table.num_rows, store_schema=False,
                   write_statistics=False, **options)
    return sink.getvalue().to_pybytes()


def _patch_header(data: bytes, member: str, pax: bool = False, **fields: bytes) -> bytes:
    """``data`` with fields of ``member``'s header block (or of its pax header block) replaced as in _reheader."""
    at = next(i for i in range(0, len(data), BLOCK) if data[i : i + 100] == member.encode().ljust(100, b"\0"))
    if pax:  # the pax header block, before its records
        at = max(i for i in range(0, at, BLOCK) if data[i : i + 14] == b"././@PaxHeader")
    return data[:at] + _reheader(data[at : at + BLOCK], **fields) + data[at + BLOCK :]


def _inner_patched(entries, **fields: bytes) -> bytes:
    """A ustar inner tar of ``entries`` whose first header block has fields replaced as in _reheader."""
    tar = _inner(entries, tarfile.USTAR_FORMAT)
    return _reheader(tar[:BLOCK], **fields) + tar[BLOCK:]


def _renamed(base: Base, names: dict[str, str]) -> bytes:
    """The base with some members renamed (hashes, comments and trailer follow)."""
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    for info, payload in zip(base.members[:-1], base.payloads):
        raw.add(names.get(info.name, info.name), payload, rows=info.rows, raw_size=info.raw_size)
    return raw.finish()


NULLABLE_KEY_VALUE = pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.string())]))


def _tags(base: Base, tags: list, kind: pa.DataType = KEY_VALUE) -> pa.Table:
    """The base's experiment with these tags, of type ``kind``."""
    return _rows_like(base, EXPERIMENTS, 1, tags=pa.array([tags], kind))


def _all_nullable(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))


def _spans_with_buffer_length(data: bytes, length: int) -> bytes:
    """The first non-empty buffer of the first record batch given another length (the Buffer structs of the
    RecordBatch's buffers vector are inline: offset, then length, 8 bytes each)."""
    start, size, _ = _arrow_messages(data)[1]
    metadata = data[start + 8 : start + 8 + size]
    batch = _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0]).table(2)
    vector = batch._target(2)
    index = next(i for i, (_, n) in enumerate(batch.structs(2, "<qq")) if n)
    at = start + 8 + vector + 4 + 16 * index + 8
    return data[:at] + struct.pack("<q", length) + data[at + 8 :]


def _schema_metadata_unaligned(data: bytes) -> bytes:
    """The schema message's metadata one zero byte longer, its length no longer a multiple of 8."""
    length = struct.unpack_from("<i", data, 4)[0]
    return data[:4] + struct.pack("<i", length + 1) + data[8 : 8 + length] + b"\0" + data[8 + length :]


def _footer(data: bytes) -> bytes:
    return data[-8 - struct.unpack("<I", data[-8:-4])[0] : -8]


def _with_footer(data: bytes, footer: bytes) -> bytes:
    return data[: -8 - struct.unpack("<I", data[-8:-4])[0]] + footer + struct.pack("<I", len(footer)) + b"PAR1"


def _footer_edit(data: bytes, find: bytes, replace: bytes, check) -> bytes:
    """The Parquet file with the first occurrence of ``find`` in its footer whose replacement parses to a footer
    that passes ``check`` (Thrift compact bytes found by trying, since the same bytes occur elsewhere)."""
    footer, at = _footer(data), -1
    while (at := _footer(data).find(find, at + 1)) >= 0:
        edited = footer[:at] + replace + footer[at + len(find) :]
        try:
            if check(_Thrift(edited).value(12)):
                return _with_footer(data, edited)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            pass
    raise AssertionError("no place to edit")


def _negative_row_group_size(data: bytes) -> bytes:
    """The first row group's total_byte_size negated (field 2 after field 1: header 0x16, zigzag varint)."""
    size = _Thrift(_footer(data)).value(12)[4][0][2]
    return _footer_edit(data, b"\x16" + _varint(2 * size), b"\x16" + _varint(2 * size - 1),
                        lambda f: f[4][0][2] == -size)


def _column_file_path(data: bytes) -> bytes:
    """The first column chunk given file_path "x" (field 1) before its file_offset (field 2, header 0x26 -> 0x16)."""
    return _footer_edit(data, b"\x26", b"\x18\x01x\x16", lambda f: f[4][0][1][0].get(1) == b"x")


def _encryption_algorithm(data: bytes) -> bytes:
    """The footer given FileMetaData field 8, encryption_algorithm = AES_GCM_V1 {}, before its stop byte."""
    footer = _footer(data)
    return _with_footer(data, footer[:-1] + b"\x0c\x10\x1c\x00\x00" + footer[-1:])


def _varint(value: int) -> bytes:
    out = b""
    while True:
        out += bytes([value & 0x7F | (0x80 if value > 0x7F else 0)])
        value >>= 7
        if not value:
            return out


def _pax_twice(tar: bytes) -> bytes:
    """The inner tar with its first pax header (header block and one block of records) written twice."""
    return tar[: 2 * BLOCK] + tar


def _unzstd(payload: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=True).read()


def _without_checksum(raw: bytes) -> bytes:
    """``raw`` as one zstd frame with a content checksum, the checksum cut off: every content byte is there,
    and python-zstandard's stream reader returns them without an error, but the frame is incomplete."""
    return zstandard.ZstdCompressor(write_checksum=True).compress(raw)[:-4]


def _skippable(payload: bytes) -> bytes:
    """``payload`` between two skippable frames (magic 0x184D2A50 and 0x184D2A5F)."""
    return struct.pack("<II", 0x184D2A50, 4) + b"skip" + payload + struct.pack("<II", 0x184D2A5F, 0)


def _with_arrow_schema(base: Base, name: str, value: str) -> bytes:
    """The member's table as Parquet whose footer's ``ARROW:schema`` key holds ``value``."""
    table, sink = _table(base, name), pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, compression="zstd", store_schema=False, write_statistics=False) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({"ARROW:schema": value})
    return sink.getvalue().to_pybytes()


def _foreign_arrow_schema(base: Base, name: str) -> str:
    """A valid serialized Arrow schema (base64) naming the member's columns, each as list<int8>."""
    schema = pa.schema([(n, pa.list_(pa.int8())) for n in _table(base, name).column_names])
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _member_rows(table: str, rows: list[dict]) -> bytes:
    """The rows as a member of ``table``, in its storage (Parquet or Arrow)."""
    arrow = pa.Table.from_pylist([complete(table, r) for r in rows], schema=TABLES[table].schema)
    return (encode_parquet if TABLES[table].storage == "parquet" else encode_arrows)(arrow).read_all()


def _rows(base: Base, name: str, copies: int) -> bytes:
    """The member's rows, each ``copies`` times (as the reference writer encodes them)."""
    rows = _table(base, name).to_pylist()
    return _member_rows(name.rsplit("/", 1)[1].split("-")[0], rows * copies)


def _tags_twice(base: Base) -> bytes:
    rows = _table(base, EXPERIMENTS).to_pylist()
    rows[0]["tags"] = [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]
    return _member_rows("experiments", rows)


def _parquet(base: Base, name: str, compression: str) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(_table(base, name), sink, compression=compression)
    return sink.getvalue().to_pybytes()


def _arrows(base: Base, name: str, compression: str | None) -> bytes:
    sink = pa.BufferOutputStream()
    table = _table(base, name)
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _longer_histogram(data: bytes) -> bytes:
    """The first definition-level histogram [0, 1] of the footer (Thrift compact: field delta 1, list of
    two i64, zigzag 0 and 1) given a third entry; the footer length grows by one byte."""
    length = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - length : -8]
    at = footer.index(b"\x19\x26\x00\x02")
    footer = footer[:at] + b"\x19\x36\x00\x02\x00" + footer[at + 4 :]
    return data[: -8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1"


def _zstd_tar(entries) -> tuple[bytes, int, int]:
    tar = _inner(entries)
    return zstandard.ZstdCompressor().compress(tar), len(entries), len(tar)


def _descriptive_of_other_types(base: Base) -> bytes:
    raw = RawArchive({"writer": ["x"], "source": "y", "export": 3})
    for info, payload in zip(base.members[1:-1], base.payloads[1:]):
        raw.add(info.name, payload, rows=info.rows, raw_size=info.raw_size)
    return raw.finish(trailer={"members": [m.to_json() for m in raw.infos], "counts": [1]})


def _with_trailer(base: Base, trailer_json) -> bytes:
    """The base's members with the trailer whose JSON text ``trailer_json(listed members)`` gives."""
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    for info, payload in zip(base.members[:-1], base.payloads):
        raw.add(info.name, payload, rows=info.rows, raw_size=info.raw_size)
    text = trailer_json([m.to_json() for m in raw.infos])
    raw.add("trailer.json.zst", zstandard.ZstdCompressor().compress(text), raw_size=len(text))
    return end_archive(b"".join(raw.parts))


def _trailer_with_float_size(base: Base) -> bytes:
    def float_size(listed: list[dict]) -> bytes:
        listed[1]["size"] = float(listed[1]["size"])
        return orjson.dumps({"members": listed, "counts": {}}, option=orjson.OPT_SORT_KEYS)

    return _with_trailer(base, float_size)


def _nested(levels: int) -> bytes:
    """A JSON value of ``levels`` arrays inside one another."""
    return b"[" * levels + b"]" * levels


def _header_nested(base: Base, levels: int) -> bytes:
    """The base with its header's JSON nested ``levels`` deep (the header object is level 1)."""
    return _header_json(base, _base_header(base)[:-1] + b',"nested":' + _nested(levels - 1) + b"}")


def _trailer_nested(base: Base, levels: int) -> bytes:
    return _with_trailer(base, lambda listed: orjson.dumps({"members": listed, "counts": {}}, option=orjson.OPT_SORT_KEYS)[:-1]
                         + b',"nested":' + _nested(levels - 1) + b"}")


CORPUS = Path(__file__).parent / "conformance"
# Cases that take gigabytes in a reader that decodes before bounding what it builds: tests read them in a
# child process under a memory cap.
MEMORY_BOMBS = ("parquet_dictionary_bomb", "parquet_too_many_rows", "arrow_string_view_bomb")


def write_corpus(target: Path = CORPUS) -> dict[str, dict]:
    verdicts = {}
    for case, (data, verdict) in cases(build_base()).items():
        (target / f"{case}.mlar").write_bytes(data)
        verdicts[case] = verdict
    (target / "verdicts.json").write_bytes(orjson.dumps(verdicts, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return verdicts

