"""The archive format and its container: round trip, damage, forward compatibility, golden v1, interop.

Every damaged archive is checked twice: through the `verify` CLI, each in its own process
(see archive_cli.CliBatch), and through ArchiveReader, which must never hand out a member that
was damaged.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard

from mlflow_archive.archive import (
    READER_VERSION,
    WRITER_VERSION,
    SECTIONS,
    TRAILER_NAME,
    ArchiveReader,
    ArchiveWriter,
    member_name,
)
from mlflow_archive.container import BLOCK, Spool
from mlflow_archive.errors import ArchiveError, DamagedArchiveError, UnsupportedArchiveError
from mlflow_archive.inspection import inspect_archive, verify_archive
from mlflow_archive.members import encode_arrows, encode_parquet
from mlflow_archive.schemas import TABLES
from archive_cli import CliBatch
from servers import console_script
from samples import (
    LONG,
    MTIME,
    SECTIONS_SINCE,
    UNICODE,
    RawArchive,
    artifact_tar,
    build_sample,
    complete,
    end_archive,
    layout,
    member_spans,
    pax_records,
    read_back,
    same,
    ustar_header,
)

NAN, INF = float("nan"), float("inf")
GOLDEN = Path(__file__).parent / "golden" / "v1.mlar"


def summary_line(members, files: int) -> str:
    """verify's summary for an archive whose writer recorded ``members`` (trailer last)."""
    rows = sum(m.rows for m in members if m.name.endswith((".parquet", ".arrows")))
    checked = sum(m.size for m in members[:-1])
    return (f"OK: format version {WRITER_VERSION}, {len(members)} members, {rows} table rows, "
            f"{files} artifact files, {checked} bytes checked.")


# == 1. Round trip ==========================================================================

def test_sample_covers_every_table_in_its_section_in_order(sample):
    names = [m.name for m in sample.members]
    assert names[0] == "header.json.zst" and names[-1] == TRAILER_NAME
    body = [n.split("/") for n in names[1:-1]]
    order = [(list(SECTIONS).index(section), int(chunk)) for section, chunk, _ in body]
    assert order == sorted(order), "members are not in section order"
    for table, spec in TABLES.items():
        section = next(s for s, stems in SECTIONS.items() if table in stems)
        ext = ".parquet" if spec.storage == "parquet" else ".arrows"
        assert any(s == section and f.startswith(table + "-") and f.endswith(ext) for s, _, f in body), table
    assert sum(n.endswith(".tar.zst") for n in names) == 2


def test_sample_bytes_are_deterministic(sample, tmp_path):
    assert build_sample(tmp_path / "a").data == sample.data
    assert build_sample(tmp_path / "b", mtime=MTIME + 1).data != sample.data


def test_round_trip_through_mlflow_cli_pipes(sample, tmp_path, damage):
    # (Requesting `damage` starts the damage tests' CLI batch now, so it runs alongside these two processes.)
    path = tmp_path / "sample.mlar"
    path.write_bytes(sample.data)
    mlflow = console_script("mlflow")

    def pipeline(*args):  # cat FILE | mlflow archive ARGS -
        cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
        cli = subprocess.Popen([mlflow, "archive", *args, "-"], stdin=cat.stdout, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        cat.stdout.close()
        return cat, cli

    verify, inspect = pipeline("verify"), pipeline("inspect", "--json")  # both run at once
    results = {}
    for key, (cat, cli) in (("verify", verify), ("inspect", inspect)):
        out, err = cli.communicate(timeout=300)
        assert cat.wait(timeout=10) == 0
        assert cli.returncode == 0, err
        assert "Traceback" not in err
        results[key] = out

    files = sum(len(f) for f in sample.artifacts.values())
    assert results["verify"] == summary_line(sample.members, files) + "\n"

    info = json.loads(results["inspect"])
    assert info["format_version"] == WRITER_VERSION
    assert info["header"] == sample.header
    assert info["counts"] == sample.counts
    assert info["ignored_members"] == []
    # every member the writer recorded, the trailer excepted (inspect lists what the trailer lists)
    assert sample.members[-1].name == TRAILER_NAME
    assert info["members"] == [m.to_json() for m in sample.members[:-1]]
    assert all({"name", "size", "sha256"} <= set(m) for m in info["members"])
    assert all("rows" in m for m in info["members"][1:])


def test_round_trip_through_reader(sample):
    reader = ArchiveReader(io.BytesIO(sample.data))
    assert reader.header == sample.header
    tables, artifacts = {}, {}
    for member in reader:
        if member.kind == ".tar.zst":
            artifacts[member.name] = {path: fh.read() for path, fh in member.iter_artifacts()}
        else:
            table = member.read_table()
            assert table.schema == member.table_spec.schema
            tables[member.name] = table.to_pylist()
    assert reader.seen == sample.members[:-1]
    assert reader.ignored == []
    assert reader.trailer["counts"] == sample.counts
    assert reader.trailer["members"] == [m.to_json() for m in sample.members[:-1]]

    assert list(tables) == list(sample.tables)
    for name, rows in sample.tables.items():
        assert same(tables[name], rows), name
    assert artifacts == sample.artifacts
    # the edge values really went through
    metrics = [r["value"] for n, rows in tables.items() if "/run_metrics-" in n for r in rows]
    assert any(v != v for v in metrics) and INF in metrics and -INF in metrics
    params = {r["key"]: r["value"] for r in tables["runs/000001/run_params-0001.parquet"]}
    assert params["long"] == LONG and len(LONG) == 6000 and params["ключ"] == UNICODE
    assert tables["experiments/000001/experiments-0001.parquet"][0]["tags"] == []
    assert artifacts["runs/000001/artifacts-0001.tar.zst"]["empty.txt"] == b""
    assert b"\0" in artifacts["runs/000001/artifacts-0001.tar.zst"]["model/data/nested/deeper/weights.bin"]


def test_verify_and_inspect_functions_agree_with_writer(sample, tmp_path):
    path = tmp_path / "sample.mlar"
    path.write_bytes(sample.data)
    report = verify_archive(str(path))
    assert report.summary() == summary_line(sample.members, 6)
    assert report.counts == sample.counts
    assert inspect_archive(str(path))["members"] == [m.to_json() for m in sample.members[:-1]]


# == 2. Damage ==============================================================================

def flipped(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def truncation_offsets(data: bytes) -> list[int]:
    """40 offsets: inside every kind of region, in different members, plus evenly spread ones."""
    regions = layout(data)
    offsets = set()
    by_kind: dict[str, list] = {}
    for r in regions:
        by_kind.setdefault(r.kind, []).append(r)
    for kind in ("pax-header", "pax-records", "pax-padding", "member-header", "data", "data-padding"):
        found = by_kind[kind]
        for k, i in enumerate((0, len(found) // 3, 2 * len(found) // 3, len(found) - 1)):
            r = found[i]
            offsets.add(r.start + (r.end - r.start) * (k + 1) // 5)
    end = by_kind["end-marker"][0]
    pad = by_kind["record-padding"][0]
    offsets |= {1, BLOCK - 1, end.start, end.start + 1, end.start + BLOCK, end.end - 1, pad.start, pad.start + 100,
                len(data) - 1}
    step = len(data) // 13
    offsets |= {step * k + 7 for k in range(1, 13)}
    offsets = sorted(o for o in offsets if 0 < o < len(data))
    assert len(offsets) >= 40, len(offsets)
    return offsets


def comment_fields(data: bytes, region) -> dict[str, tuple[int, int]]:
    """Absolute byte spans of each key and value in a pax-records region's comment."""
    text = data[region.start : region.end]
    spans = {}
    start = text.index(b"comment=") + len(b"comment=")
    for field in text[start:-1].split(b" "):
        key, _, value = field.partition(b"=")
        key_at = region.start + start
        spans[key.decode()] = (key_at, key_at + len(key))
        if value:
            spans[key.decode() + "="] = (key_at + len(key) + 1, key_at + len(field))
        start += len(field) + 1
    return spans


def flip_positions(data: bytes) -> list[tuple[int, int]]:
    """200 seeded random (offset, bit) pairs over the whole file, plus targeted ones in every region."""
    rng = random.Random(20240601)
    picks = {(rng.randrange(len(data)), rng.randrange(8)) for _ in range(200)}
    # checksum-field flips a lenient octal parser misses: leading 0 -> space, NUL <-> space
    risky = [(148, 4), (154, 5), (155, 5)]
    others = [(0, 0), (5, 6), (99, 1), (100, 2), (124 + 10, 0), (136 + 3, 1), (156, 3), (257, 2), (263, 0), (345, 7)]
    headers = 0
    comment_keys = ["mlflow", "index=", "sha256", "sha256=", "rows", "rows=", "raw_size", "raw_size=", "meta",
                    "meta="]
    members = 0
    for r in layout(data):
        if r.kind in ("pax-header", "member-header"):
            offset, bit = risky[headers % 3]
            picks.add((r.start + offset, bit))
            offset, bit = others[headers % len(others)]
            picks.add((r.start + offset, bit))
            headers += 1
        elif r.kind == "pax-records":
            fields = comment_fields(data, r)
            picks.add((r.start if members % 2 else r.end - 1, members % 8))  # the record's length or newline
            key = comment_keys[members % len(comment_keys)]
            if key in fields:
                lo, hi = fields[key]
                picks.add((lo + members % (hi - lo), (members + 5) % 8))
            members += 1
        elif r.kind in ("pax-padding", "data-padding"):
            picks.add((r.start if members % 2 else r.end - 1, members % 8))
        elif r.kind == "data":
            picks.add((rng.randrange(r.start, r.end), rng.randrange(8)))
        else:  # end marker and record padding
            for offset in (r.start, r.start + 1, r.start + BLOCK - 1, r.start + BLOCK, (r.start + r.end) // 2, r.end - 1):
                picks.add((offset, offset % 8))
    return sorted(picks)


def region_at(data: bytes, pos: int):
    return next(r for r in layout(data) if r.start <= pos < r.end)


def check_reader(result, recorded: dict, damaged: str | None) -> str | None:
    """None if ArchiveReader dealt with the damage properly, else what went wrong."""
    if result.error is None:
        return "ArchiveReader read it without an error"
    if not result.bytes_ok:
        return "a yielded member's bytes do not match its sha256"
    wrong = [m for m in result.yielded if recorded.get(m.name) != m]
    if wrong:
        return f"yielded members that differ from what was written: {wrong}"
    if damaged in {m.name for m in result.yielded}:
        return f"yielded the damaged member {damaged}"
    return None


# -- Named cases ----------------------------------------------------------------------------

def experiments_table() -> pa.Table:
    return pa.Table.from_pylist([complete("experiments", {"experiment_id": "7", "name": "e", "lifecycle_stage": "active",
                                                         "tags": []})], schema=TABLES["experiments"].schema)


EXP = "experiments/000001/experiments-0001.parquet"
ART = "runs/000001/artifacts-0001.tar.zst"


@functools.lru_cache
def zstd_bomb() -> bytes:
    """A valid zstd frame of a JSON document of 256 MiB (spaces), some kilobytes compressed."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as writer:
        writer.write(b"{")
        block = b" " * (1 << 20)
        for _ in range(256):
            writer.write(block)
        writer.write(b"}")
    assert len(out.getvalue()) < 100_000
    return out.getvalue()


def case_reordered(sample):
    spans = {name: (s, e) for name, s, e in member_spans(sample.data)}
    (a0, a1), (b0, b1) = spans["runs/000001/run_params-0001.parquet"], spans["runs/000001/run_tags-0001.parquet"]
    assert a1 == b0
    d = sample.data
    return d[:a0] + d[b0:b1] + d[a0:a1] + d[b1:], "out of place", "runs/000001/run_tags-0001.parquet"


def case_plain_tar_python(sample):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("header.json.zst")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue(), "plain tar", None


def _tar_cf(fmt, tmp):
    src = Path(tmp)
    (src / "header.json.zst").write_bytes(b"hello")
    cmd = ["tar", "-cf", "-", "-C", str(src), "header.json.zst"]
    if fmt:
        cmd[1:1] = [f"--format={fmt}"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def case_plain_tar_gnu(sample, tmp):
    return _tar_cf(None, tmp), "not a POSIX pax tar", None


def case_plain_tar_gnu_pax(sample, tmp):
    return _tar_cf("pax", tmp), "no mlflow-archive checksum", None


def case_empty(sample):
    return b"", "empty or too short", None


def case_random(sample):
    return random.Random(7).randbytes(50_000), "not an mlflow-archive", None


def case_newer_version(sample):
    out = io.BytesIO()
    ArchiveWriter(out, {"reader_version": READER_VERSION + 1}, MTIME).close()
    return out.getvalue(), f"version {READER_VERSION + 1}", None


def case_required_feature(sample):
    out = io.BytesIO()
    ArchiveWriter(out, {"required_features": ["zstd-dictionaries"]}, MTIME).close()
    return out.getvalue(), "zstd-dictionaries", None


def _raw_with(name, payload=b"x", **kw):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    raw.add(name, payload, **kw)
    return raw.finish()


def case_dotdot_name(sample):
    return _raw_with("../x"), "unsafe name '../x'", "../x"


def case_inner_dotdot_name(sample):
    return _raw_with("runs/../../x"), "unsafe name", "runs/../../x"


def case_absolute_name(sample):
    return _raw_with("/etc/x"), "unsafe name '/etc/x'", "/etc/x"


def case_absolute_prefix(sample):
    return _raw_with("runs-0001.parquet", prefix="/runs/000001"), "unsafe name", "runs/000001/runs-0001.parquet"


def case_absolute_pax_path(sample):
    return _raw_with("x", records={"path": "/etc/passwd"}), "unsafe name '/etc/passwd'", "/etc/passwd"


def case_symlink(sample):
    return (_raw_with("runs/000001/link", b"", typeflag=b"2", linkname="/etc/passwd"), "symbolic link",
            "runs/000001/link")


def case_symlink_without_pax(sample):
    return _raw_with("link", b"", typeflag=b"2", linkname="/etc/passwd", pax=False), "symbolic link", "link"


def case_hardlink(sample):
    return _raw_with("hard", b"", typeflag=b"1", linkname=EXP), "hard link", "hard"


def case_directory(sample):
    return _raw_with("runs/", b"", typeflag=b"5"), "directory", "runs/"


def case_duplicate(sample):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    raw.add_table(EXP, experiments_table())
    body = raw.finish()
    return body, f"holds member {EXP} twice", None


def case_trailing_garbage(sample):
    return sample.data + b"garbage", "after its end-of-archive marker", None


def case_trailing_zeros(sample):
    return sample.data + b"\0" * 100, "not a whole number", None


def case_bomb_header(sample):
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    raw.add("header.json.zst", zstd_bomb(), raw_size=300)
    return raw.finish(), "decompresses to more than its declared 300 bytes", None


def case_bomb_trailer(sample):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    raw.add(TRAILER_NAME, zstd_bomb(), raw_size=4000)
    return end_archive(b"".join(raw.parts)), "decompresses to more than its declared 4000 bytes", None


def _artifacts(entry):
    raw = RawArchive()
    raw.add_artifacts(ART, artifact_tar([("ok.txt", b"fine"), entry, ("after.txt", b"late")]), count=3)
    return raw.finish()


def _link(name, kind, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def case_artifact_dotdot(sample):
    return _artifacts(("../evil", b"x")), "unsafe path '../evil'", "../evil"


def case_artifact_absolute(sample):
    return _artifacts(("/tmp/evil", b"x")), "unsafe path '/tmp/evil'", "/tmp/evil"


def case_artifact_symlink(sample):
    return _artifacts(_link("evil-link", tarfile.SYMTYPE, "/etc/passwd")), "not a regular file", "evil-link"


def case_artifact_hardlink(sample):
    return _artifacts(_link("evil-hard", tarfile.LNKTYPE, "/etc/passwd")), "not a regular file", "evil-hard"


def case_artifact_size_overstated(sample):  # tarfile stops reading at the tar's end marker: the size still counts
    raw, tar = RawArchive(), artifact_tar([("ok.txt", b"fine")])
    raw.add(ART, zstandard.ZstdCompressor().compress(tar), rows=1, raw_size=len(tar) + 1)
    return raw.finish(), f"decompresses to {len(tar)} bytes, not the declared {len(tar) + 1}", None


def case_artifact_count_overstated(sample):
    raw = RawArchive()
    raw.add_artifacts(ART, artifact_tar([("ok.txt", b"fine")]), count=2)
    return raw.finish(), "declares 2 files but holds 1", None


def case_pax_size_text(sample):
    return _raw_with("runs/000001/runs-0001.parquet", records={"size": "12abc"}), "invalid size", None


def case_pax_size_negative(sample):
    return _raw_with("runs/000001/runs-0001.parquet", records={"size": "-1"}), "invalid size", None


def case_pax_without_member(sample):
    raw = RawArchive()
    recs = pax_records({"comment": "mlflow-archive-member/1"})
    body = b"".join(raw.parts) + ustar_header("././@PaxHeader", len(recs), b"x") + recs + b"\0" * (BLOCK - len(recs))
    return end_archive(body), "followed by no member", None


def case_header_not_first(sample):
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    raw.add_table(EXP, experiments_table())
    return raw.finish(), "not header.json.zst", EXP


def case_member_after_trailer(sample):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    raw.add_json(TRAILER_NAME, {"members": [m.to_json() for m in raw.infos], "counts": {}})
    raw.add("runs/000001/runs-0001.parquet", b"late")
    return end_archive(b"".join(raw.parts)), "members follow its trailer", "runs/000001/runs-0001.parquet"


def case_trailer_disagrees(sample):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    return raw.finish(trailer={"members": [raw.infos[0].to_json()], "counts": {}}), "trailer does not list", None


def case_no_trailer(sample):
    raw = RawArchive()
    raw.add_table(EXP, experiments_table())
    return end_archive(b"".join(raw.parts)), "ends without its trailer", None


def case_wrong_rows(sample):
    raw = RawArchive()
    raw.add(EXP, encode_parquet(experiments_table()).read_all(), rows=2)
    return raw.finish(), "declares 2 rows but holds 1", None


def case_not_json(sample):
    raw = RawArchive()
    raw.parts, raw.infos = [], []
    raw.add("header.json.zst", zstandard.ZstdCompressor().compress(b"{nope"), raw_size=5)
    return raw.finish(), "not valid JSON", None


def case_other_format(sample):
    raw = RawArchive(header={"format": "something-else"})
    return raw.finish(), "names another format", None


NAMED = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}
NEEDS_TMP = {"plain_tar_gnu", "plain_tar_gnu_pax"}


def build_named(name, sample, tmp_path_factory):
    fn = NAMED[name]
    return fn(sample, tmp_path_factory.mktemp(name)) if name in NEEDS_TMP else fn(sample)


class Damage:
    """Every damaged archive of this module, and their `verify` CLI results (computed in the background)."""

    def __init__(self, sample, tmp_path_factory):
        data = sample.data
        self.truncations = truncation_offsets(data)
        self.flips = flip_positions(data)
        self.named = {name: build_named(name, sample, tmp_path_factory) for name in NAMED}
        jobs = [(["verify", "-"], data[:n]) for n in self.truncations]
        jobs += [(["verify", "{file}"], flipped(data, p, b)) for p, b in self.flips]
        jobs += [(["verify", "{file}"], case[0]) for case in self.named.values()]
        self._batch = CliBatch(tmp_path_factory.mktemp("cli"), jobs, width=1)
        self._results = None

    def _all(self):
        if self._results is None:
            self._results = self._batch.results()
        return self._results

    def cli_truncations(self):
        return self._all()[: len(self.truncations)]

    def cli_flips(self):
        return self._all()[len(self.truncations) : len(self.truncations) + len(self.flips)]

    def cli_named(self, name):
        return self._all()[len(self.truncations) + len(self.flips) + list(self.named).index(name)]


@pytest.fixture(scope="module")
def damage(sample, tmp_path_factory):
    return Damage(sample, tmp_path_factory)


def test_truncation_at_any_offset_is_detected(sample, damage):
    data, recorded = sample.data, {m.name: m for m in sample.members}
    regions = {r.kind for n in damage.truncations for r in [region_at(data, n)]}
    assert regions >= {"pax-header", "pax-records", "pax-padding", "member-header", "data", "data-padding",
                       "end-marker", "record-padding"}
    starts = {name: start for name, start, _ in member_spans(data)}
    failures = []
    for n in damage.truncations:
        region = region_at(data, n)
        damaged = region.member if region.member and n > starts[region.member] else None
        problem = check_reader(read_back(data[:n], decode=False), recorded, damaged)
        if problem:
            failures.append(f"truncated to {n} bytes ({region.kind} of {region.member}): {problem}")
    for n, result in zip(damage.truncations, damage.cli_truncations()):
        problem = result.one_line_error() or (result.stdout_text and f"stdout {result.stdout_text!r}")
        if problem:
            failures.append(f"verify of the file truncated to {n} bytes: {problem}")
    assert not failures, "\n".join(failures)


def test_every_single_bit_flip_is_detected(sample, damage):
    data, recorded = sample.data, {m.name: m for m in sample.members}
    kinds = {region_at(data, p).kind for p, _ in damage.flips}
    assert kinds == {"pax-header", "pax-records", "pax-padding", "member-header", "data", "data-padding",
                     "end-marker", "record-padding"}
    assert len(damage.flips) > 350
    failures = []
    for pos, bit in damage.flips:
        region = region_at(data, pos)
        # The reader itself must refuse the damage before yielding the member, so nothing needs decoding.
        problem = check_reader(read_back(flipped(data, pos, bit), decode=False), recorded, region.member)
        if problem:
            failures.append(f"bit {bit} of byte {pos} ({region.kind} of {region.member}, "
                            f"{data[pos:pos + 1]!r} at +{pos - region.start}): {problem}")
    for (pos, bit), result in zip(damage.flips, damage.cli_flips()):
        problem = result.one_line_error() or (result.stdout_text and f"stdout {result.stdout_text!r}")
        if problem:
            failures.append(f"verify with bit {bit} of byte {pos} flipped: {problem}")
    assert not failures, f"{len(failures)} undetected:\n" + "\n".join(failures)


def test_metadata_digit_flips_are_caught_before_the_member_is_yielded(sample):
    """A digit of rows= or raw_size= flipped into another digit still parses: only the comment's own check
    (meta=) can refuse the member before it is yielded; later checks (read_table, trailer) come too late."""
    data, recorded = sample.data, {m.name: m for m in sample.members}
    failures = []
    for r in layout(data):
        if r.kind != "pax-records" or r.member not in (
            "runs/000001/runs-0001.parquet", "runs/000001/artifacts-0001.tar.zst"
        ):
            continue
        fields = comment_fields(data, r)
        for key in ("rows=", "raw_size="):
            for pos in range(*fields.get(key, (0, 0))):
                for bit in range(4):
                    damaged = flipped(data, pos, bit)
                    if not damaged[pos : pos + 1].isdigit():
                        continue
                    # every such flip is detected in the end ...
                    result = read_back(damaged)
                    assert result.error is not None and result.bytes_ok
                    # ... but the member must not be yielded at all
                    problem = check_reader(result, recorded, r.member)
                    if problem:
                        failures.append(f"bit {bit} of byte {pos} ({key} of {r.member}): {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", list(NAMED))
def test_named_damage(sample, damage, name):
    data, phrase, damaged = damage.named[name]
    result = read_back(data)
    assert isinstance(result.error, ArchiveError)
    assert phrase in str(result.error)
    assert "\n" not in str(result.error)
    assert result.bytes_ok
    if damaged:
        assert damaged not in {m.name for m in result.yielded}
        assert damaged not in result.paths
    if name.startswith("artifact_"):  # the good file before the bad entry came through, nothing after it
        assert result.paths == ["ok.txt"]
    cli = damage.cli_named(name)
    assert cli.one_line_error() is None, cli.one_line_error()
    assert phrase in cli.stderr_text
    assert cli.stdout_text == ""


def test_version_messages(damage):
    newer = damage.cli_named("newer_version").stderr_text
    assert newer.startswith(f"Error: This archive needs format reader version {READER_VERSION + 1},")
    assert "`pip install -U mlflow-archive`" in newer
    feature = damage.cli_named("required_feature").stderr_text
    assert "zstd-dictionaries" in feature and "`pip install -U mlflow-archive`" in feature
    for name in ("newer_version", "required_feature"):
        with pytest.raises(UnsupportedArchiveError):
            ArchiveReader(io.BytesIO(damage.named[name][0]))


def test_zstd_bomb_is_refused_without_inflating(damage):
    import tracemalloc

    for name in ("bomb_header", "bomb_trailer"):
        tracemalloc.start()
        try:
            with pytest.raises(DamagedArchiveError, match="decompresses to more than"):
                for _ in ArchiveReader(io.BytesIO(damage.named[name][0])):
                    pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, f"{name}: {peak} bytes allocated for a 256 MiB bomb"


def test_unsafe_names_are_refused_by_the_writer_too():
    from mlflow_archive.container import ContainerWriter

    writer = ContainerWriter(io.BytesIO(), MTIME)
    for name in ("../x", "/etc/x", "a//b", "a/./b", "x" * 100):
        spool = Spool()
        spool.write(b"x")
        with pytest.raises(DamagedArchiveError, match="unsafe name"):
            writer.add(name, spool)


# == 3. Forward compatibility ===============================================================

def future_members_archive() -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out, {}, MTIME)
    writer.chunk("experiments").write_table("experiments", experiments_table())
    thing = Spool()
    thing.write(b"\x00future bytes")
    writer._add("future/000001/thing-0001.bin", thing)  # a member kind this reader does not know
    chunk = writer.chunk("runs")
    table = Spool()
    table.write(b"not even parquet")
    writer._add("runs/000001/newtable-0001.parquet", table, rows=1)  # a table this reader does not know
    chunk.write_table("run_tags", {"run_id": ["r"], "key": ["k"], "value": ["v"]})
    writer.close()
    return out.getvalue()


def extra_columns_archive() -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out, {}, MTIME)
    table = experiments_table().append_column("future_column", pa.array([[1.5, 2.5]]))
    writer._add(member_name("experiments", 1, "experiments", 1, ".parquet"), encode_parquet(table), rows=1)
    spans = pa.table({"span_id": ["s"], "future": [True], "trace_id": ["t"], "name": ["n"], "start_time_ns": [1],
                      "status_code": ["OK"], "attributes_json": ["{}"], "events_json": ["[]"]})
    writer._add(member_name("traces", 1, "spans", 1, ".arrows"), encode_arrows(spans), rows=1)
    writer.close()
    return out.getvalue()


def unknown_fields_archive() -> bytes:
    raw = RawArchive(header={"future_field": {"nested": [1, 2]}, "optional_features": ["future-optional"]})
    raw.add(EXP, encode_parquet(experiments_table()).read_all(), rows=1, comment_extra=" crc32c=1234 future=x",
            records={"mtime": "1700000000.5", "MLFLOWARCHIVE.future": "yes"})
    members = [{**m.to_json(), "future_member_field": 1} for m in raw.infos]
    return raw.finish(trailer={"members": members, "counts": {"experiments": 1}, "future_trailer_field": "x"})


FORWARD = {"future_members": future_members_archive, "extra_columns": extra_columns_archive,
           "unknown_fields": unknown_fields_archive}


@pytest.fixture(scope="module")
def forward_cli(tmp_path_factory):
    return dict(zip(FORWARD, CliBatch(tmp_path_factory.mktemp("fwd"), [(["verify", "-"], fn()) for fn in FORWARD.values()],
                                      width=2).results()))


def test_unknown_members_are_skipped_and_listed(forward_cli):
    data = future_members_archive()
    reader = ArchiveReader(io.BytesIO(data))
    names = [m.name for m in reader]
    assert names == ["experiments/000001/experiments-0001.parquet", "runs/000001/run_tags-0001.parquet"]
    assert reader.ignored == ["future/000001/thing-0001.bin", "runs/000001/newtable-0001.parquet"]
    cli = forward_cli["future_members"]
    assert cli.returncode == 0, cli.stderr_text
    assert cli.stdout_text.endswith(", 2 unknown member(s) ignored.\n")
    assert cli.stdout_text.startswith(f"OK: format version {WRITER_VERSION}, 6 members, 2 table rows,")


def test_unknown_columns_are_dropped(forward_cli):
    reader = ArchiveReader(io.BytesIO(extra_columns_archive()))
    tables = {m.stem: m.read_table() for m in reader}
    assert tables["experiments"].schema == TABLES["experiments"].schema
    assert tables["experiments"].to_pylist() == experiments_table().to_pylist()
    assert tables["spans"].schema == TABLES["spans"].schema
    assert tables["spans"].to_pylist() == [complete("spans", {
        "trace_id": "t", "span_id": "s", "name": "n", "start_time_ns": 1, "status_code": "OK",
        "attributes_json": "{}", "events_json": "[]"})]
    assert forward_cli["extra_columns"].returncode == 0, forward_cli["extra_columns"].stderr_text
    assert "2 table rows" in forward_cli["extra_columns"].stdout_text


def test_unknown_header_trailer_and_comment_fields_are_ignored(forward_cli):
    reader = ArchiveReader(io.BytesIO(unknown_fields_archive()))
    assert reader.header["future_field"] == {"nested": [1, 2]}
    assert [m.read_table().num_rows for m in reader] == [1]
    assert reader.trailer["future_trailer_field"] == "x"
    assert reader.ignored == []
    assert forward_cli["unknown_fields"].returncode == 0, forward_cli["unknown_fields"].stderr_text
    assert forward_cli["unknown_fields"].stdout_text.startswith("OK: format version 1, 3 members, 1 table rows,")


# == 4. Golden v1 ===========================================================================

GOLDEN_SHA256 = "57643ac690d91cb9ec94701e2e2a5c88c1426de752ae7a4673e0519e5a67d781"
R1, R2, R3 = "3f1c0a4b2e6d4c1f9b8a7e6d5c4b3a21", "a0b1c2d3e4f5061728394a5b6c7d8e9f", "ffffffffffffffffffffffffffffff00"
M1, T1 = "m-0123456789abcdef0123456789abcdef", "tr-0123456789abcdef0123456789abcdef"
G_LONG = "0123456789abcdé" * 400
G_UNICODE = "Ünïcödé 実験 🚀 ∑ \u200b"
G_BINARY = bytes(range(256)) * 3 + b"\0\xff" * 100

GOLDEN_HEADER = {
    "format": "mlflow-archive",
    "reader_version": 1,
    "writer_version": 1,
    "required_features": [],
    "optional_features": [],
    "writer": {"name": "mlflow-archive", "version": "0.1.0"},
    "source": {"tracking_uri": "http://127.0.0.1:5000", "mlflow_version": "3.17.2"},
    "export": {"started_at": "2024-01-02T03:04:05Z", "scope": "all"},
}
# Rows as the reader returns them, null columns left out (a column added later must read as null).
GOLDEN_TABLES = {
    "experiments/000001/experiments-0001.parquet": [
        {"experiment_id": "0", "name": "Default", "artifact_location": "mlflow-artifacts:/0", "lifecycle_stage": "active",
         "creation_time": 1700000000000, "last_update_time": 1700000000001, "tags": []},
        {"experiment_id": "1", "name": G_UNICODE, "lifecycle_stage": "deleted",
         "tags": [{"key": "mlflow.note.content", "value": G_LONG}, {"key": "empty", "value": ""},
                  {"key": "none", "value": None}]},
    ],
    "runs/000001/runs-0001.parquet": [
        {"run_id": R1, "experiment_id": "0", "run_name": "run ü", "user_id": "ana", "status": "FINISHED",
         "start_time": 1700000000100, "end_time": 1700000000200, "lifecycle_stage": "active",
         "artifact_uri": f"mlflow-artifacts:/0/{R1}/artifacts"},
        {"run_id": R2, "experiment_id": "1", "status": "RUNNING", "start_time": 1700000000300, "lifecycle_stage": "deleted"},
    ],
    "runs/000001/run_params-0001.parquet": [
        {"run_id": R1, "key": "long", "value": G_LONG},
        {"run_id": R1, "key": "ключ", "value": G_UNICODE},
        {"run_id": R1, "key": "empty", "value": ""},
    ],
    "runs/000001/run_tags-0001.parquet": [
        {"run_id": R1, "key": "mlflow.runName", "value": "run ü"},
        {"run_id": R2, "key": "note"},
    ],
    "runs/000001/run_metrics-0001.parquet": [
        {"run_id": R1, "key": "loss", "value": NAN, "timestamp": 1700000000101, "step": 0},
        {"run_id": R1, "key": "loss", "value": INF, "timestamp": 1700000000102, "step": 1},
        {"run_id": R1, "key": "loss", "value": -INF, "timestamp": 1700000000103, "step": 2},
    ],
    "runs/000001/run_metrics-0002.parquet": [
        {"run_id": R1, "key": "acc", "value": 0.125, "timestamp": 1700000000104, "step": -1},
        {"run_id": R2, "key": "acc", "value": -0.0, "timestamp": 0, "step": 9223372036854775807},
        {"run_id": R2, "key": "big", "value": 1.7976931348623157e308, "timestamp": 1, "step": 0},
    ],
    "runs/000001/run_inputs-0001.parquet": [
        {"run_id": R1, "name": "train", "digest": "abc123", "source_type": "local", "source": '{"uri": "/data/train.csv"}',
         "schema": '{"mlflow_colspec": []}', "tags": []},
        {"run_id": R1, "name": "eval", "digest": "def456", "source_type": "code", "source": "{}",
         "tags": [{"key": "mlflow.data.context", "value": "eval"}]},
    ],
    "runs/000002/runs-0001.parquet": [
        {"run_id": R3, "experiment_id": "0", "run_name": "", "status": "KILLED", "lifecycle_stage": "active"},
    ],
    "runs/000002/run_tags-0001.parquet": [
        {"run_id": R3, "key": "mlflow.user", "value": G_UNICODE},
    ],
    "logged_models/000001/logged_models-0001.parquet": [
        {"model_id": M1, "experiment_id": "0", "name": "model", "creation_timestamp": 1700000001000, "source_run_id": R1,
         "status": "READY", "tags": [], "params": [{"key": "alpha", "value": "0.1"}, {"key": "long", "value": G_LONG}]},
    ],
    "logged_models/000001/logged_model_metrics-0001.parquet": [
        {"model_id": M1, "key": "rmse", "value": NAN, "timestamp": 1700000001001, "step": 0, "run_id": R1},
        {"model_id": M1, "key": "r2", "value": -INF, "timestamp": 1700000001002, "step": 1},
    ],
    "logged_models/000001/run_model_io-0001.parquet": [
        {"run_id": R1, "direction": "input", "model_id": M1},
        {"run_id": R1, "direction": "output", "model_id": M1, "step": 3},
    ],
    "registry/000001/registered_models-0001.parquet": [
        {"name": "Model Ü", "description": G_LONG, "creation_timestamp": 1700000002000, "tags": [], "aliases": []},
        {"name": "other", "tags": [{"key": "team", "value": "ml"}], "aliases": [{"alias": "champion", "version": 2}]},
    ],
    "registry/000001/model_versions-0001.parquet": [
        {"name": "other", "version": 1, "current_stage": "None", "source": f"models:/{M1}", "run_id": R1,
         "status": "READY", "model_id": M1, "tags": []},
        {"name": "other", "version": 2, "description": G_UNICODE, "tags": [{"key": "validated", "value": "true"}]},
    ],
    "prompts/000001/prompts-0001.parquet": [
        {"name": "greeting", "description": "Says hi", "tags": [], "aliases": [{"alias": "prod", "version": 1}]},
    ],
    "prompts/000001/prompt_versions-0001.parquet": [
        {"name": "greeting", "version": 1, "template_json": '"Hello {{name}} ü"', "commit_message": "first", "tags": []},
        {"name": "greeting", "version": 2,
         "template_json": '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{q}}"}]',
         "response_format_json": '{"type": "object"}', "model_config_json": '{"temperature": 0.5}',
         "tags": [{"key": "k", "value": "v"}]},
    ],
    "traces/000001/traces-0001.arrows": [
        {"trace_id": T1, "experiment_id": "0", "request_time": 1700000003000, "execution_duration": 12, "state": "OK",
         "request_preview": G_UNICODE, "response_preview": G_LONG,
         "trace_metadata": [{"key": "mlflow.sourceRun", "value": R1}], "tags": []},
    ],
    "traces/000001/spans-0001.arrows": [
        {"trace_id": T1, "span_id": "00f067aa0ba902b7", "name": "root", "start_time_ns": 1700000003000000000,
         "end_time_ns": 1700000003012000000, "status_code": "OK", "attributes_json": "{}", "events_json": "[]"},
        {"trace_id": T1, "span_id": "00f067aa0ba902b8", "parent_span_id": "00f067aa0ba902b7", "name": "child ü",
         "start_time_ns": 1700000003001000000, "status_code": "ERROR", "status_message": "boom",
         "attributes_json": '{"a": 1}', "events_json": '[{"name": "exception", "timestamp_ns": 1, "attributes": {}}]'},
    ],
    "traces/000001/assessments-0001.arrows": [
        {"trace_id": T1, "assessment_id": "a-1", "name": "correct", "kind": "feedback", "value_json": "true",
         "source_type": "HUMAN", "source_id": "ana", "rationale": G_UNICODE, "valid": True, "metadata": []},
        {"trace_id": T1, "assessment_id": "a-2", "name": "expected", "kind": "expectation", "value_json": '"42"',
         "source_type": "CODE", "overrides": "a-1", "valid": False, "metadata": [{"key": "m", "value": "n"}]},
    ],
    "evaluation_datasets/000001/evaluation_datasets-0001.parquet": [
        {"dataset_id": "d-1", "name": "golden set", "digest": "0f0f", "experiment_ids": [], "tags": []},
        {"dataset_id": "d-2", "name": G_UNICODE, "experiment_ids": ["0", "1"], "tags": [{"key": "k", "value": None}]},
    ],
    "evaluation_datasets/000001/evaluation_dataset_records-0001.arrows": [
        {"dataset_id": "d-1", "record_id": "r-1", "inputs_json": '{"q": "2+2"}', "outputs_json": '"4"',
         "expectations_json": '{"answer": "4"}', "source_type": "HUMAN", "tags": []},
    ],
}
GOLDEN_ARTIFACTS = {
    "runs/000001/artifacts-0001.tar.zst": {
        "model/MLmodel": b"flavors:\n  python_function: {}\n",
        "model/data/nested/deeper/weights.bin": G_BINARY,
        "empty.txt": b"",
        "unicodé/ü 実.txt": G_UNICODE.encode(),
    },
    "logged_models/000001/artifacts-0001.tar.zst": {
        "artifacts/model.pkl": G_BINARY[::-1],
        "artifacts/empty/.keep": b"",
    },
}
GOLDEN_MEMBERS = [
    "header.json.zst",
    "experiments/000001/experiments-0001.parquet",
    "runs/000001/runs-0001.parquet",
    "runs/000001/run_params-0001.parquet",
    "runs/000001/run_tags-0001.parquet",
    "runs/000001/run_metrics-0001.parquet",
    "runs/000001/run_metrics-0002.parquet",
    "runs/000001/run_inputs-0001.parquet",
    "runs/000001/artifacts-0001.tar.zst",
    "runs/000002/runs-0001.parquet",
    "runs/000002/run_tags-0001.parquet",
    "logged_models/000001/logged_models-0001.parquet",
    "logged_models/000001/logged_model_metrics-0001.parquet",
    "logged_models/000001/run_model_io-0001.parquet",
    "logged_models/000001/artifacts-0001.tar.zst",
    "registry/000001/registered_models-0001.parquet",
    "registry/000001/model_versions-0001.parquet",
    "prompts/000001/prompts-0001.parquet",
    "prompts/000001/prompt_versions-0001.parquet",
    "traces/000001/traces-0001.arrows",
    "traces/000001/spans-0001.arrows",
    "traces/000001/assessments-0001.arrows",
    "evaluation_datasets/000001/evaluation_datasets-0001.parquet",
    "evaluation_datasets/000001/evaluation_dataset_records-0001.arrows",
]
GOLDEN_COUNTS = {
    "experiments": 2, "runs": 3, "run_params": 3, "run_tags": 3, "run_metrics": 6, "run_inputs": 2,
    "artifact_files": 6, "artifact_bytes": 1998, "logged_models": 1, "logged_model_metrics": 2, "run_model_io": 2,
    "registered_models": 2, "model_versions": 2, "prompts": 1, "prompt_versions": 2, "traces": 1, "spans": 2,
    "assessments": 2, "evaluation_datasets": 2, "evaluation_dataset_records": 1,
}


def test_golden_v1_is_the_committed_file():
    assert hashlib.sha256(GOLDEN.read_bytes()).hexdigest() == GOLDEN_SHA256, (
        "tests/golden/v1.mlar changed: it is written once and never regenerated")


def read_whole(path: Path) -> tuple[ArchiveReader, dict[str, list[dict]], dict[str, dict[str, bytes]]]:
    """The reader (header, trailer, members seen), every table's rows and every artifact file, by member name."""
    with open(path, "rb") as stream:
        reader = ArchiveReader(stream)
        tables, artifacts = {}, {}
        for member in reader:
            if member.kind == ".tar.zst":
                artifacts[member.name] = {p: fh.read() for p, fh in member.iter_artifacts()}
            else:
                tables[member.name] = member.read_table().to_pylist()
    return reader, tables, artifacts


def test_golden_v1_reads_as_written():
    reader, tables, artifacts = read_whole(GOLDEN)
    assert reader.header == GOLDEN_HEADER
    assert [m.name for m in reader.seen] == GOLDEN_MEMBERS
    assert reader.ignored == []
    assert reader.trailer["counts"] == GOLDEN_COUNTS
    assert list(tables) == list(GOLDEN_TABLES)
    for name, expected in GOLDEN_TABLES.items():
        got = [{k: v for k, v in row.items() if v is not None} for row in tables[name]]
        assert same(got, expected), name
    assert artifacts == GOLDEN_ARTIFACTS
    assert verify_archive(str(GOLDEN)).summary() == (
        "OK: format version 1, 25 members, 39 table rows, 6 artifact files, 61396 bytes checked.")


# == 5. Interop =============================================================================

def test_parquet_member_opens_with_plain_tar_duckdb_and_pandas(tmp_path):
    import duckdb
    import pandas as pd

    listing = subprocess.run(["tar", "-tvf", str(GOLDEN)], capture_output=True, text=True, check=True)
    assert listing.stderr == ""
    assert [line.split()[-1] for line in listing.stdout.splitlines()] == GOLDEN_MEMBERS + [TRAILER_NAME]

    metrics, params = "runs/000001/run_metrics-0001.parquet", "runs/000001/run_params-0001.parquet"
    subprocess.run(["tar", "-xf", str(GOLDEN), "-C", str(tmp_path), metrics, params], check=True)
    metrics_file, params_file = tmp_path / metrics, tmp_path / params

    rows = duckdb.sql(f"SELECT run_id, key, value, timestamp, step FROM read_parquet('{metrics_file}') ORDER BY step").fetchall()
    assert [r[4] for r in rows] == [0, 1, 2]
    assert rows[0][2] != rows[0][2] and rows[1][2] == INF and rows[2][2] == -INF
    assert rows[0][:2] == (R1, "loss") and rows[0][3] == 1700000000101
    long_value = duckdb.sql(f"SELECT value FROM read_parquet('{params_file}') WHERE key = 'long'").fetchall()[0][0]
    assert long_value == G_LONG
    assert duckdb.sql(f"SELECT value FROM read_parquet('{params_file}') WHERE key = 'ключ'").fetchall()[0][0] == G_UNICODE

    frame = pd.read_parquet(metrics_file)
    assert list(frame.columns) == ["run_id", "key", "value", "timestamp", "step"]
    assert frame["value"].isna().tolist() == [True, False, False]
    assert frame["value"].tolist()[1:] == [INF, -INF]
    assert pd.read_parquet(params_file).set_index("key")["value"].to_dict() == {"long": G_LONG, "ключ": G_UNICODE, "empty": ""}


# == 6. Golden v2 to v5: written from tests/samples.py ======================================

# Each written once by tests/golden/make_v<version>.py and never regenerated.
GOLDEN_SAMPLE_SHA256 = {
    2: "fa1b526ef1981e9f7bf3bf32f528882d0303f1bc53898284bca1ed434031c552",
    3: "fcce2ad386be3a49122b1bca4101ca998a078f72aa825cd6cc748c3e83a9777c",
    4: "3811c0f59a0ae5d29647199807d5f6d39f42c59b262de6b41f4702bea467a1ca",
    5: "9646fb124e1920b29f6a6d26665b29cff721a4dd0ab55141604e3f060e57520f",
}


def _golden(version: int) -> Path:
    return Path(__file__).parent / "golden" / f"v{version}.mlar"


@pytest.mark.parametrize("version", sorted(GOLDEN_SAMPLE_SHA256))
def test_golden_sample_is_the_committed_file(version):
    assert hashlib.sha256(_golden(version).read_bytes()).hexdigest() == GOLDEN_SAMPLE_SHA256[version], (
        f"tests/golden/v{version}.mlar changed: it is written once and never regenerated")


def _golden_reads_as_the_sample(version: int, sample) -> dict[str, list[dict]]:
    """A golden archive written from tests/samples.py (make_v<version>.py) gives back the sample's rows and files,
    those of the sections that version's writers wrote."""
    reader, tables, artifacts = read_whole(_golden(version))
    assert (reader.header["reader_version"], reader.header["writer_version"]) == (1, version)
    expected = {name: rows for name, rows in sample.tables.items() if SECTIONS_SINCE.get(name.split("/")[0], 1) <= version}
    assert list(tables) == list(expected)
    for name, rows in expected.items():
        assert same(tables[name], rows), name
    assert artifacts == sample.artifacts
    section_of = {table: section for section, tables in SECTIONS.items() for table in tables}
    counted = {kind: n for kind, n in sample.counts.items() if SECTIONS_SINCE.get(section_of.get(kind), 1) <= version}
    assert reader.trailer["counts"] == counted
    return tables


def test_golden_v2_reads_as_the_sample_it_was_written_from(sample):
    tables = _golden_reads_as_the_sample(2, sample)
    assert tables["traces/000001/spans-0001.arrows"][0]["links_json"]  # a version 2 column, filled


def test_golden_v3_reads_as_the_sample_it_was_written_from(sample):
    tables = _golden_reads_as_the_sample(3, sample)
    assert tables["webhooks/000001/webhooks-0001.parquet"][0]["encrypted_secret"]  # a version 3 table, filled


def test_golden_v4_reads_as_the_sample_it_was_written_from(sample):
    tables = _golden_reads_as_the_sample(4, sample)
    assert [r["version"] for r in tables["scorers/000001/scorer_versions-0001.parquet"]] == [1, 3, 1]  # a version 4 table


def test_golden_v5_reads_as_the_sample_it_was_written_from(sample):
    tables = _golden_reads_as_the_sample(5, sample)
    assert [r["is_default"] for r in tables["label_schemas/000001/label_schemas-0001.parquet"]] == [True, False]  # version 5
    assert [r["category"] for r in tables["issues/000001/issue_categories-0001.parquet"]] == ["Cache", "latency"]
