"""Format conformance: hostile inputs end in one ArchiveError sentence, the conformance corpus reads as its
verdicts say, and decoders bound memory before decoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

import archive_cli
from corpus import BASE_FILES, CORPUS, build_base
from mlflow_archive.errors import ArchiveError
from fuzz_archives import check, hostile
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
    assert (CORPUS / "base.mlar").read_bytes() == BASE.data  # the corpus was made from today's base


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
