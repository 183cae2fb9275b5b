"""Test helpers for the archive format: a sample archive, a layout map, hand-built tar bytes, and CLI runs.

``build_sample`` writes an archive through the public writer only (ArchiveWriter,
Chunk.table/write_table, TableSink.flush, Chunk.artifacts). Everything else here
builds bytes by hand so tests can produce archives the writer refuses to write.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import io
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard

from mlflow_archive.archive import SECTIONS, ArchiveReader, ArchiveWriter
from mlflow_archive.container import BLOCK, RECORD, MemberInfo, _meta_check, format_comment
from mlflow_archive.errors import ArchiveError
from mlflow_archive.schemas import TABLES

MTIME = 1_700_000_000
LONG = "0123456789abcdé" * 400  # 6000 characters, MLflow's longest param value
UNICODE = "Ünïcödé 実験 🚀 ∑ \u200b"
R1, R2, R3 = "3f1c0a4b2e6d4c1f9b8a7e6d5c4b3a21", "a0b1c2d3e4f5061728394a5b6c7d8e9f", "ffffffffffffffffffffffffffffff00"
M1 = "m-0123456789abcdef0123456789abcdef"
T1 = "tr-0123456789abcdef0123456789abcdef"
KV = lambda *pairs: [{"key": k, "value": v} for k, v in pairs]  # noqa: E731

SAMPLE_HEADER = {
    "source": {"tracking_uri": "http://127.0.0.1:5000", "mlflow_version": "3.17.2"},
    "export": {"started_at": "2024-01-02T03:04:05Z", "scope": "all"},
}

# table -> parts -> rows, written in chunk 1 of the table's section (archive.SECTIONS).
# Only the columns given are set, the others are null.
SAMPLE_TABLES: dict[str, list[list[dict]]] = {
    "experiments": [[
        {"experiment_id": "0", "name": "Default", "artifact_location": "mlflow-artifacts:/0",
         "lifecycle_stage": "active", "creation_time": 1700000000000, "last_update_time": 1700000000001, "tags": []},
        {"experiment_id": "1", "name": UNICODE, "lifecycle_stage": "deleted",
         "tags": KV(("mlflow.note.content", LONG), ("empty", ""), ("none", None))},
    ]],
    "runs": [[
        {"run_id": R1, "experiment_id": "0", "run_name": "run ü", "user_id": "ana", "status": "FINISHED",
         "start_time": 1700000000100, "end_time": 1700000000200, "lifecycle_stage": "active",
         "artifact_uri": "mlflow-artifacts:/0/" + R1 + "/artifacts"},
        {"run_id": R2, "experiment_id": "1", "status": "RUNNING", "start_time": 1700000000300,
         "lifecycle_stage": "deleted"},
    ]],
    "run_params": [[
        {"run_id": R1, "key": "long", "value": LONG},
        {"run_id": R1, "key": "ключ", "value": UNICODE},
        {"run_id": R1, "key": "empty", "value": ""},
    ]],
    "run_tags": [[
        {"run_id": R1, "key": "mlflow.runName", "value": "run ü"},
        {"run_id": R2, "key": "note", "value": None},
    ]],
    "run_metrics": [
        [
            {"run_id": R1, "key": "loss", "value": float("nan"), "timestamp": 1700000000101, "step": 0},
            {"run_id": R1, "key": "loss", "value": float("inf"), "timestamp": 1700000000102, "step": 1},
            {"run_id": R1, "key": "loss", "value": float("-inf"), "timestamp": 1700000000103, "step": 2},
        ],
        [  # a second part of the same table in the same chunk
            {"run_id": R1, "key": "acc", "value": 0.125, "timestamp": 1700000000104, "step": -1},
            {"run_id": R2, "key": "acc", "value": -0.0, "timestamp": 0, "step": 9223372036854775807},
            {"run_id": R2, "key": "big", "value": 1.7976931348623157e308, "timestamp": 1, "step": 0},
        ],
    ],
    "run_inputs": [[
        {"run_id": R1, "name": "train", "digest": "abc123", "source_type": "local",
         "source": '{"uri": "/data/train.csv"}', "schema": '{"mlflow_colspec": []}', "tags": []},
        {"run_id": R1, "name": "eval", "digest": "def456", "source_type": "code", "source": "{}",
         "tags": KV(("mlflow.data.context", "eval"))},
    ]],
    "run_model_io": [[
        {"run_id": R1, "direction": "input", "model_id": M1},
        {"run_id": R1, "direction": "output", "model_id": M1, "step": 3},
    ]],
    "logged_models": [[
        {"model_id": M1, "experiment_id": "0", "name": "model", "creation_timestamp": 1700000001000,
         "source_run_id": R1, "status": "READY", "tags": [], "params": KV(("alpha", "0.1"), ("long", LONG))},
    ]],
    "logged_model_metrics": [[
        {"model_id": M1, "key": "rmse", "value": float("nan"), "timestamp": 1700000001001, "step": 0, "run_id": R1},
        {"model_id": M1, "key": "r2", "value": float("-inf"), "timestamp": 1700000001002, "step": 1},
    ]],
    "registered_models": [[
        {"name": "Model Ü", "description": LONG, "creation_timestamp": 1700000002000, "tags": [], "aliases": []},
        {"name": "other", "tags": KV(("team", "ml")), "aliases": [{"alias": "champion", "version": 2}]},
    ]],
    "model_versions": [[
        {"name": "other", "version": 1, "source": "models:/" + M1, "run_id": R1, "status": "READY",
         "model_id": M1, "current_stage": "None", "tags": []},
        {"name": "other", "version": 2, "description": UNICODE, "tags": KV(("validated", "true"))},
    ]],
    "prompts": [[{"name": "greeting", "description": "Says hi", "tags": [], "aliases": [{"alias": "prod", "version": 1}]}]],
    "prompt_versions": [[
        {"name": "greeting", "version": 1, "template_json": '"Hello {{name}} ü"', "commit_message": "first", "tags": []},
        {"name": "greeting", "version": 2,
         "template_json": '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{q}}"}]',
         "response_format_json": '{"type": "object"}', "model_config_json": '{"temperature": 0.5}',
         "tags": KV(("k", "v"))},
    ]],
    "traces": [[
        {"trace_id": T1, "experiment_id": "0", "request_time": 1700000003000, "execution_duration": 12,
         "state": "OK", "request_preview": UNICODE, "response_preview": LONG,
         "trace_metadata": KV(("mlflow.sourceRun", R1)), "tags": [], "linked_run_ids": [R3]},
    ]],
    "spans": [[
        {"trace_id": T1, "span_id": "00f067aa0ba902b7", "name": "root", "start_time_ns": 1700000003000000000,
         "end_time_ns": 1700000003012000000, "status_code": "OK", "attributes_json": "{}", "events_json": "[]",
         "links_json": '[{"trace_id": "tr-0", "span_id": "00f067aa0ba902b0", "attributes": {}}]'},
        {"trace_id": T1, "span_id": "00f067aa0ba902b8", "parent_span_id": "00f067aa0ba902b7", "name": "child ü",
         "start_time_ns": 1700000003001000000, "status_code": "ERROR", "status_message": "boom",
         "attributes_json": '{"a": 1}', "events_json": '[{"name": "exception", "timestamp_ns": 1, "attributes": {}}]'},
    ]],
    "assessments": [[
        {"trace_id": T1, "assessment_id": "a-1", "name": "correct", "kind": "feedback", "value_json": "true",
         "source_type": "HUMAN", "source_id": "ana", "rationale": UNICODE, "valid": True, "metadata": []},
        {"trace_id": T1, "assessment_id": "a-2", "name": "expected", "kind": "expectation",
         "value_json": '"42"', "source_type": "CODE", "overrides": "a-1", "valid": False,
         "metadata": KV(("m", "n"))},
    ]],
    "evaluation_datasets": [[
        {"dataset_id": "d-1", "name": "golden set", "digest": "0f0f", "experiment_ids": [], "tags": []},
        {"dataset_id": "d-2", "name": UNICODE, "experiment_ids": ["0", "1"], "tags": KV(("k", None))},
    ]],
    "evaluation_dataset_records": [[
        {"dataset_id": "d-1", "record_id": "r-1", "inputs_json": '{"q": "2+2"}', "outputs_json": '"4"',
         "expectations_json": '{"answer": "4"}', "source_type": "TRACE", "source_id": T1, "tags": [],
         "source_data_json": '{"trace_id": "%s"}' % T1},
    ]],
    "webhooks": [[
        {"webhook_id": "wh-1", "name": "deploy.hook_1", "description": UNICODE, "url": "https://hooks.example.com/mlflow",
         "events": [{"entity": "model_version", "action": "created"}, {"entity": "registered_model", "action": "created"}],
         "status": "ACTIVE", "creation_timestamp": 1700000004000, "last_updated_timestamp": 1700000004001,
         "encrypted_secret": "gAAAAABlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "has_secret": True},
        {"webhook_id": "wh-2", "name": "audit", "url": "http://127.0.0.1:9/hook", "events": [{"entity": "prompt", "action": "created"}],
         "status": "DISABLED", "creation_timestamp": 1700000004002},
    ]],
    "scorers": [[
        {"scorer_id": "sc-1", "experiment_id": "0", "name": "quality"},
        {"scorer_id": "sc-2", "experiment_id": "0", "name": UNICODE},
    ]],
    "scorer_versions": [[
        {"scorer_id": "sc-1", "version": 1, "creation_time": 1700000005000,
         "serialized_scorer": '{"name": "quality", "instructions_judge_pydantic_data": {"model": "openai:/gpt-4o-mini"}}'},
        {"scorer_id": "sc-1", "version": 3, "creation_time": 1700000005002,
         "serialized_scorer": '{"name": "quality", "instructions_judge_pydantic_data": {"model": "gateway:/d0c5a1e4"}}'},
        {"scorer_id": "sc-2", "version": 1, "serialized_scorer": '{"name": "%s"}' % UNICODE},
    ]],
    "online_scoring_configs": [[
        {"online_scoring_config_id": "osc-1", "scorer_id": "sc-1", "experiment_id": "0", "sample_rate": 0.25,
         "filter_string": "attributes.status = 'OK'"},
    ]],
    "label_schemas": [[
        {"schema_id": "ls-1", "experiment_id": "0", "name": "Feedback", "type": "feedback", "input_type": "text",
         "input_config_json": '{"max_length": null}', "instruction": "Any feedback?", "enable_comment": False,
         "created_time": 1700000005500, "last_update_time": 1700000005500, "is_default": True},
        {"schema_id": "ls-2", "experiment_id": "0", "name": UNICODE, "type": "expectation", "input_type": "categorical",
         "input_config_json": '{"options": ["yes", "no"], "multi_select": true}', "enable_comment": True,
         "created_by": "alice", "created_time": 1700000005501, "last_update_time": 1700000005502, "is_default": False},
    ]],
    "issues": [[
        {"issue_id": "iss-1", "experiment_id": "0", "name": "slow answers", "description": UNICODE, "status": "pending",
         "severity": "high", "root_causes": ["cold cache", UNICODE], "source_run_id": R3, "categories": ["latency", "Cache"],
         "created_timestamp": 1700000006000, "last_updated_timestamp": 1700000006001, "created_by": "alice",
         "last_updated_by": "bob", "metadata": [{"key": "ticket", "value": "T-1"}]},
        {"issue_id": "iss-2", "experiment_id": "0", "name": UNICODE, "description": "", "status": "resolved",
         "created_timestamp": 1700000006002, "last_updated_timestamp": 1700000006002, "last_seen_timestamp": 1700000006003},
    ]],
    "issue_categories": [[
        {"issue_id": "iss-1", "category_hash": "5e1ecee06a7fc06f305ae5c12acfe7a7f67b8ece7af76932ed3afab00c3c6921", "category": "Cache"},
        {"issue_id": "iss-1", "category_hash": "3fdb7e873db12844fd1c1064932fe36f39148927c31fdac71a09695c7bb157be", "category": "latency"},
    ]],
}
# Sections a format version's writers wrote: the golden archive of that version holds the sample's rows of these.
SECTIONS_SINCE = {"webhooks": 3, "scorers": 4, "label_schemas": 5, "issues": 5}
# A second chunk of a section: table -> parts -> rows.
SAMPLE_CHUNK_2 = ("runs", {
    "runs": [[{"run_id": R3, "experiment_id": "0", "run_name": "", "status": "KILLED", "lifecycle_stage": "active"}]],
    "run_tags": [[{"run_id": R3, "key": "mlflow.user", "value": UNICODE}]],
})

BINARY = bytes(range(256)) * 3 + b"\0\xff" * 100
# section -> archive path -> bytes; written after the tables of the section's first chunk
SAMPLE_ARTIFACTS: dict[str, dict[str, bytes]] = {
    "runs": {
        "model/MLmodel": b"flavors:\n  python_function: {}\n",
        "model/data/nested/deeper/weights.bin": BINARY,
        "empty.txt": b"",
        "unicodé/ü 実.txt": UNICODE.encode(),
    },
    "logged_models": {
        "artifacts/model.pkl": BINARY[::-1],
        "artifacts/empty/.keep": b"",
    },
}


def complete(table: str, row: dict) -> dict:
    """The row as a reader returns it: every column of the table, in schema order."""
    columns = TABLES[table].schema.names
    unknown = set(row) - set(columns)
    assert not unknown, f"sample row of {table} has columns the schema lacks: {unknown}"
    return {name: row.get(name) for name in columns}


@dataclass
class Sample:
    data: bytes
    members: list[MemberInfo]  # as ArchiveWriter.members recorded them, trailer last
    counts: dict[str, int]
    header: dict
    tables: dict[str, list[dict]] = field(default_factory=dict)  # member name -> complete rows
    artifacts: dict[str, dict[str, bytes]] = field(default_factory=dict)  # member name -> path -> bytes


def build_sample(workdir: Path, mtime: int = MTIME) -> Sample:
    """Write the sample archive through the public writer; same ``mtime`` (and library versions), same bytes.

    Every table of schemas.TABLES gets rows, in its section's first chunk, sections in archive
    order; ``runs`` has a second chunk, ``run_metrics`` two parts, two sections artifact tarballs.
    """
    missing = set(TABLES) - set(SAMPLE_TABLES)
    assert not missing, f"the sample has no rows for {missing}"
    stream = io.BytesIO()
    writer = ArchiveWriter(stream, SAMPLE_HEADER, mtime)
    tables: dict[str, list[dict]] = {}
    artifacts: dict[str, dict[str, bytes]] = {}

    def write(chunk, stems: dict[str, list[list[dict]]]) -> None:
        for table, parts in stems.items():
            with chunk.table(table) as sink:
                for part in parts:
                    rows = [complete(table, r) for r in part]
                    sink.append({name: [r[name] for r in rows] for name in rows[0]})
                    sink.flush()
                    tables[writer.members[-1].name] = rows

    placed = set()
    for section, stems in SECTIONS.items():
        chunk = writer.chunk(section)
        write(chunk, {t: SAMPLE_TABLES[t] for t in stems if t in SAMPLE_TABLES})
        placed.update(stems)
        files = SAMPLE_ARTIFACTS.get(section)
        if files:
            with chunk.artifacts() as sink:
                for path, content in files.items():
                    local = workdir / section / path
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(content)
                    sink.add(path, local)
            artifacts[writer.members[-1].name] = files
        if section == SAMPLE_CHUNK_2[0]:
            write(writer.chunk(section), SAMPLE_CHUNK_2[1])
    assert placed >= set(TABLES), f"tables in no section: {set(TABLES) - placed}"
    writer.close()
    data = stream.getvalue()
    header = orjson.loads(zstandard.ZstdDecompressor().decompress(_first_payload(data)))
    return Sample(data, list(writer.members), dict(writer.counts), header, tables, artifacts)


def write_golden(target: Path) -> None:
    """Write the sample archive to ``target`` as tests/golden/make_v<N>.py does: once, never regenerated."""
    if target.exists():
        sys.exit(f"{target} exists; the golden archive is written once and never regenerated.")
    with tempfile.TemporaryDirectory() as tmp:
        target.write_bytes(build_sample(Path(tmp), mtime=MTIME).data)
    print(f"wrote {target}")


def _first_payload(data: bytes) -> bytes:
    region = next(r for r in layout(data) if r.kind == "data")
    return data[region.start : region.end]


# -- Comparing -----------------------------------------------------------------------------

def same(a, b) -> bool:
    """Deep equality in which NaN equals NaN, -0.0 differs from 0.0 and types must agree (1 != 1.0 != True)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# -- Layout of the bytes -------------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    kind: str  # pax-header, pax-records, pax-padding, member-header, data, data-padding, end-marker, record-padding
    start: int
    end: int
    member: str | None  # the member the bytes belong to


def layout(data: bytes) -> list[Region]:
    """Split an archive's bytes into regions, independently of mlflow_archive's reader."""
    regions, pos = [], 0
    while data[pos : pos + BLOCK] != b"\0" * BLOCK:
        pax_size = int(data[pos + 124 : pos + 136].rstrip(b"\0"), 8)
        size = int(data[pos + BLOCK + _up(pax_size) + 124 : pos + BLOCK + _up(pax_size) + 136].rstrip(b"\0"), 8)
        name = data[pos + BLOCK + _up(pax_size) : pos + BLOCK + _up(pax_size) + 100].rstrip(b"\0").decode()
        for kind, length in (("pax-header", BLOCK), ("pax-records", pax_size), ("pax-padding", _up(pax_size) - pax_size),
                             ("member-header", BLOCK), ("data", size), ("data-padding", _up(size) - size)):
            if length:
                regions.append(Region(kind, pos, pos + length, name))
            pos += length
    regions.append(Region("end-marker", pos, pos + 2 * BLOCK, None))
    if pos + 2 * BLOCK < len(data):
        regions.append(Region("record-padding", pos + 2 * BLOCK, len(data), None))
    assert regions[-1].end == len(data) and len(data) % RECORD == 0
    return regions


def _up(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def member_spans(data: bytes) -> list[tuple[str, int, int]]:
    """(name, start, end) of each member's whole byte range, pax header to data padding."""
    spans: dict[str, list[int]] = {}
    for r in layout(data):
        if r.member:
            spans.setdefault(r.member, [r.start, r.end])[1] = r.end
    return [(name, s, e) for name, (s, e) in spans.items()]


# -- Hand-built tar bytes ------------------------------------------------------------------

def ustar_header(name: str, size: int, typeflag: bytes = b"0", *, prefix: str = "", linkname: str = "",
                 magic: bytes = b"ustar\x0000", mtime: int = MTIME) -> bytes:
    h = bytearray(BLOCK)
    h[0:100] = name.encode().ljust(100, b"\0")
    h[100:108] = b"%07o\0" % 0o644
    h[108:116] = h[116:124] = b"%07o\0" % 0
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % mtime
    h[156:157] = typeflag
    h[157:257] = linkname.encode().ljust(100, b"\0")
    h[257:265] = magic
    h[345:500] = prefix.encode().ljust(155, b"\0")
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pax_records(records: dict[str, str]) -> bytes:
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n += 1
        out += str(n).encode() + body
    return out


def pad(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zjson(obj) -> tuple[bytes, int]:
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return zstandard.ZstdCompressor().compress(raw), len(raw)


class RawArchive:
    """Builds archive bytes member by member, with none of the writer's safety checks."""

    def __init__(self, header: dict | None = None, mtime: int = MTIME) -> None:
        self.parts: list[bytes] = []
        self.infos: list[MemberInfo] = []
        self.mtime = mtime
        full = {"format": "mlflow-archive", "reader_version": 1, "writer_version": 1, "required_features": [],
                "optional_features": [], "writer": {"name": "mlflow-archive", "version": "0.1.0"}}
        self.add_json("header.json.zst", {**full, **(header or {})})

    def add(self, name: str, payload: bytes, *, rows: int | None = None, raw_size: int | None = None,
            typeflag: bytes = b"0", records: dict | None = None, prefix: str = "", linkname: str = "",
            index: int | None = None, pax: bool = True, comment_extra: str = "") -> None:
        index = len(self.infos) if index is None else index
        sha = sha256(payload)
        out = b""
        if pax:
            # A future writer's extra fields go before `meta`, which checksums everything ahead of it.
            full_name = f"{prefix}/{name}" if prefix else name
            fields = format_comment(full_name, index, sha, rows, raw_size).rpartition(" meta=")[0] + comment_extra
            comment = f"{fields} meta={_meta_check(full_name, fields)}"
            recs = pax_records({"comment": comment, **(records or {})})
            out += ustar_header("././@PaxHeader", len(recs), b"x", mtime=self.mtime) + recs + pad(len(recs))
        out += ustar_header(name, len(payload), typeflag, prefix=prefix, linkname=linkname, mtime=self.mtime)
        out += payload + pad(len(payload))
        self.parts.append(out)
        self.infos.append(MemberInfo(name, len(payload), sha, rows, raw_size))

    def add_json(self, name: str, obj, raw_size: int | None = None) -> None:
        payload, size = zjson(obj)
        self.add(name, payload, raw_size=size if raw_size is None else raw_size)

    def add_table(self, name: str, table) -> None:
        from mlflow_archive.members import encode_arrows, encode_parquet

        spool = (encode_parquet if name.endswith(".parquet") else encode_arrows)(table)
        self.add(name, spool.read_all(), rows=table.num_rows)

    def add_artifacts(self, name: str, tar_bytes: bytes, count: int) -> None:
        self.add(name, zstandard.ZstdCompressor().compress(tar_bytes), rows=count, raw_size=len(tar_bytes))

    def finish(self, trailer: dict | None = None, counts: dict | None = None) -> bytes:
        if trailer is None:
            trailer = {"members": [m.to_json() for m in self.infos], "counts": counts or {}}
        self.add_json("trailer.json.zst", trailer)
        return end_archive(b"".join(self.parts))


def end_archive(body: bytes) -> bytes:
    body += b"\0" * (2 * BLOCK)
    return body + b"\0" * (-len(body) % RECORD)


def artifact_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A plain tar (as tarfile writes it) of (path, bytes) files and raw TarInfo entries (links...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buf.getvalue()


# -- Reading back, as verify does ----------------------------------------------------------

@dataclass
class ReadResult:
    yielded: list[MemberInfo]  # members the reader handed out
    error: ArchiveError | None
    bytes_ok: bool  # every handed-out member's bytes hash to its sha256
    paths: list[str] = field(default_factory=list)  # artifact paths handed out
    ignored: list[str] = field(default_factory=list)


def read_back(data: bytes, decode: bool = True) -> ReadResult:
    """Consume an archive with ArchiveReader, decoding every table and artifact tarball unless ``decode`` is
    false (then only the reader itself checks). Only ArchiveError is caught."""
    result = ReadResult([], None, True)
    try:
        reader = ArchiveReader(io.BytesIO(data))
        for member in reader:
            result.yielded.append(member.info)
            result.bytes_ok &= sha256(member.spool.read_all()) == member.info.sha256
            if not decode:
                continue
            if member.kind == ".tar.zst":
                for path, fh in member.iter_artifacts():
                    result.paths.append(path)
                    fh.read()
            else:
                member.read_table()
        result.ignored = reader.ignored
    except ArchiveError as exc:
        result.error = exc
    return result
