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
from corpus import BASE_FILES, CORPUS, build_base
from fuzz_archives import check, hostile
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


@pytest.mark.parametrize("case", sorted(VERDICTS))
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
        result = archive_cli.run(command, str(CORPUS / f"{case}.mlar"), check=False)
        if command == "verify" and (verdict["verdict"] == "refuse") != (result.returncode != 0):
            failures.append(f"{case}: exit {result.returncode}, expected {verdict['verdict']}")
        elif result.returncode and not (result.stderr_text.startswith("Error: ") and result.stderr_text.count("\n") == 1):
            failures.append(f"{case}: {result.stderr_text[-500:]!r}")
    assert not failures, "\n".join(failures)


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
    tests = Path(__file__).parent
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": f"{tests.parent}{os.pathsep}{tests}"})
    assert result.returncode == 0, result.stderr[-2000:]
