"""Format conformance: hostile inputs end in one ArchiveError sentence, the conformance corpus reads as its
verdicts say, and decoders bound memory before decoding."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_archives import BASE_FILES, build_base, check, hostile
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
