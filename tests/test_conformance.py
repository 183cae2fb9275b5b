"""Format conformance: hostile inputs end in one ArchiveError sentence, the conformance corpus reads as its
verdicts say, and decoders bound memory before decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import archive_cli
from corpus import BASE_FILES, CORPUS, MEMORY_BOMBS, build_base, runs_named, spans_named
from fuzz_archives import check, hostile
from mlflow_archive import members
from mlflow_archive.errors import ArchiveError
from samples import read_back

BASE = build_base()


def test_base_archive_reads_back_whole():
    result = read_back(BASE.data)
    assert result.error is None
    assert [m.name for m in result.yielded] == [m.name for m in BASE.members[1:-1]]
    assert sorted(result.paths) == sorted(p for p in BASE_FILES)


@settings(max_examples=800, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_archives_are_read_whole_or_refused_in_one_sentence(damage):
    problem = check(BASE, damage(BASE))
    assert problem is None, problem


VERDICTS = json.loads((CORPUS / "verdicts.json").read_text())


def test_corpus_lists_every_archive_and_checks_both_verdicts():
    assert sorted(p.stem for p in CORPUS.glob("*.mlar")) == sorted(VERDICTS)
    assert {v["verdict"] for v in VERDICTS.values()} == {"accept", "refuse"}


@pytest.mark.parametrize("case", sorted(set(VERDICTS) - set(MEMORY_BOMBS)))
def test_reader_matches_the_corpus_verdict(case):
    verdict = VERDICTS[case]
    result = read_back((CORPUS / f"{case}.mlar").read_bytes())
    if verdict["verdict"] == "refuse":
        assert isinstance(result.error, ArchiveError), f"{case} ({verdict['rule']}) was accepted"
        assert verdict["error"] in str(result.error)
        assert "\n" not in str(result.error)
        return
    assert result.error is None, f"{case} ({verdict['rule']}): {result.error}"
    assert [m.name for m in result.yielded] == verdict["members"]
    assert result.ignored == verdict["ignored"]
    assert sorted(result.paths) == verdict["files"]


def test_verify_cli_refuses_a_cut_short_artifact_tar_in_one_sentence(tmp_path):
    path = tmp_path / "cut.mlar"
    path.write_bytes((CORPUS / "artifact_cut_short.mlar").read_bytes())
    result = archive_cli.run("verify", str(path), check=False)
    assert result.returncode != 0
    assert result.stderr_text.startswith("Error: The archive is damaged: artifact member")
    assert result.stderr_text.count("\n") == 1 and "Traceback" not in result.stderr_text


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_cli_answers_every_corpus_archive_in_one_sentence_or_reads_it(command):
    """verify gives each verdict; inspect (which lists members without decoding them) reads or refuses
    each archive, and never fails otherwise than in one sentence."""
    failures = []
    for case, verdict in sorted(VERDICTS.items()):
        if case in MEMORY_BOMBS:  # read under a memory cap below
            continue
        result = archive_cli.run(command, str(CORPUS / f"{case}.mlar"), check=False)
        if command == "verify" and (verdict["verdict"] == "refuse") != (result.returncode != 0):
            failures.append(f"{case}: exit {result.returncode}, expected {verdict['verdict']}")
        elif result.returncode and not (result.stderr_text.startswith("Error: ") and result.stderr_text.count("\n") == 1):
            failures.append(f"{case}: {result.stderr_text[-500:]!r}")
    assert not failures, "\n".join(failures)


REFUSAL_ROUNDS = 6  # 36 refused archives: 216 processes


def test_every_refusal_exits_with_1_and_one_error_line_every_time(tmp_path):
    """Each refused archive, verified REFUSAL_ROUNDS times by the CLI in a process of its own that exits as
    the console script does. A pyarrow pool thread still freeing Python memory at exit once aborted about
    one such process in 70 (exit 134, "terminate called without an active exception")."""
    refused = [CORPUS / f"{case}.mlar" for case, verdict in sorted(VERDICTS.items()) if verdict["verdict"] == "refuse"]
    jobs = [(["verify", str(path)], b"") for _ in range(REFUSAL_ROUNDS) for path in refused]
    assert len(jobs) >= 200
    results = archive_cli.CliBatch(tmp_path, jobs, width=2).results()
    failures = [f"{r.command}: exit {r.returncode}, stderr {r.stderr_text[-300:]!r}" for r in results
                if r.returncode != 1 or r.one_line_error()]
    assert not failures, f"{len(failures)} of {len(results)}:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("case", ["header_nested_100000_levels", "trailer_nested_100000_levels"])
def test_json_nested_100000_levels_is_one_sentence_in_every_command(case, tmp_path):
    """Python's JSON parser recurses once per level: such a member once ended every command in a RecursionError."""
    archive = str(CORPUS / f"{case}.mlar")
    runs = {
        "verify": archive_cli.run("verify", archive, check=False),
        "inspect": archive_cli.run("inspect", archive, check=False),
        "import": archive_cli.import_(archive, f"sqlite:///{tmp_path / 'import.db'}", check=False),
        "import --no-verify": archive_cli.import_(archive, f"sqlite:///{tmp_path / 'import.db'}", "--no-verify", check=False),
        "restore": archive_cli.run("restore", archive, "--tracking-uri", f"sqlite:///{tmp_path / 'restore.db'}",
                                   "--artifacts-destination", tmp_path / "artifacts", "--quiet", check=False),
    }
    for command, result in runs.items():
        assert result.one_line_error() is None, f"{command}: {result.one_line_error()}"
        assert "nested more than 64 levels deep" in result.stderr_text, f"{command}: {result.stderr_text}"


FOOTER_MUTATIONS = """
import random, struct, sys
from corpus import build_base
from mlflow_archive.container import Spool
from mlflow_archive import members
from mlflow_archive.errors import ArchiveError
from mlflow_archive.members import decode_table
from mlflow_archive.schemas import TABLES

base, rng = build_base(), random.Random(7)
for info, data in zip(base.members, base.payloads):
    if not info.name.endswith(".parquet"):
        continue
    footer = struct.unpack("<I", data[-8:-4])[0]
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(data) - 8 - footer, len(data) - 8)] = rng.randrange(256)
        spool = Spool()
        spool.write(bytes(damaged))
        try:
            decode_table(spool, TABLES[info.name.split("/")[2].rsplit("-", 1)[0]], info.rows, info.name)
        except ArchiveError:
            pass
"""


def test_damaged_parquet_footers_never_abort_the_process(tmp_path):
    """pyarrow aborts the process (std::terminate) on some footers, e.g. size statistics histograms that do
    not match the schema, so this runs in a child process: an abort is a failed test, not a lost session."""
    script = tmp_path / "footers.py"
    script.write_text(FOOTER_MUTATIONS)
    result = _run_child(str(script))
    assert result.returncode == 0, result.stderr[-2000:]


def _run_child(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Python in a child process, with the package and the test helpers importable (and ``env`` set)."""
    tests = Path(__file__).parent
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": f"{tests.parent}{os.pathsep}{tests}"})


MEMORY_CAP = 3 << 29  # 1.5 GiB of address space: a bomb that decodes fails the test, not the machine
CAPPED_READ = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from samples import read_back
result = read_back(open(sys.argv[1], "rb").read())
# This process's own peak (VmHWM): ru_maxrss also counts the parent's size at the fork before exec.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"error": None if result.error is None else str(result.error), "peak_mib": peak_kib // 1024}))
"""


def _read_capped(path: Path, cap: int) -> dict:
    """Read an archive as verify does, in a child process whose address space is capped at ``cap``. Arrow allocates
    from the system's malloc there: its default pool (mimalloc) reserves about 1 GiB of address space up front,
    which the cap counts though none of it is used."""
    result = _run_child("-c", CAPPED_READ, str(path), str(cap), ARROW_DEFAULT_MEMORY_POOL="system", MALLOC_ARENA_MAX="2")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", MEMORY_BOMBS)
def test_memory_bombs_are_refused_before_they_are_built(case):
    """Each bomb decodes to gigabytes; the reader refuses it in one sentence, holding little more than the
    interpreter itself (about 150 MiB with pyarrow and MLflow imported)."""
    read = _read_capped(CORPUS / f"{case}.mlar", MEMORY_CAP)
    assert VERDICTS[case]["error"] in (read["error"] or ""), read
    assert "\n" not in read["error"]
    assert read["peak_mib"] < 400, read


def test_a_valid_member_larger_than_the_memory_left_is_out_of_memory_not_damaged(tmp_path):
    """512 MiB of valid run names (one 8 KiB name on 2**16 rows) under a cap that leaves less than that."""
    path = tmp_path / "large.mlar"
    path.write_bytes(runs_named(BASE, 1 << 16, 8 << 10))
    baseline = _read_capped(CORPUS / "base.mlar", MEMORY_CAP // 2)
    assert baseline["error"] is None, baseline  # the cap leaves room for the interpreter
    read = _read_capped(path, MEMORY_CAP // 2)
    assert read["error"].startswith("Out of memory while decoding member runs/000001/runs-0001.parquet"), read
    assert "damaged" not in read["error"]
    assert _read_capped(path, MEMORY_CAP)["error"] is None


@pytest.mark.parametrize("archive", [runs_named, spans_named], ids=["dictionary", "string_view"])
def test_a_string_shared_by_every_row_counts_at_its_length_on_each(archive, monkeypatch):
    """One 64 KiB name on 1024 rows is 64 MiB decoded: refused under a 60 MiB limit, read under 80 MiB."""
    data = archive(BASE, 1 << 10, 64 << 10)
    monkeypatch.setattr(members, "MAX_TABLE_RAW", 60 << 20)
    assert "decodes to more than 62914560 bytes" in str(read_back(data).error)
    monkeypatch.setattr(members, "MAX_TABLE_RAW", 80 << 20)
    assert read_back(data).error is None
