"""Helpers for comparing a database export with a REST export, and for checking a snapshot."""

from __future__ import annotations

import hashlib
import tarfile
from collections import Counter, defaultdict

import sqlalchemy as sa
from restore_data import database_rows

from mlflow_archive.archive import ArchiveReader
from mlflow_archive.streams import open_input

# What the live writer of test_database_export logs per run: enough keys that reading them one by one takes
# longer than the writer needs for a step, enough steps that a run is being written for seconds.
LIVE_STEPS, LIVE_KEYS = 30, 40


def member_digests(path) -> dict[str, str]:
    """Every member of an archive, in order, with the SHA-256 of its bytes."""
    with tarfile.open(path) as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()}


def _header(path) -> dict:
    with open_input(str(path)) as stream:
        reader = ArchiveReader(stream)
        for _ in reader:
            pass
        return reader.header


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for key, item in value.items():
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
    return out


def changed_header_fields(a, b) -> set[str]:
    """The dotted header fields (``source.snapshot``, ...) that differ between two archives, or that one lacks."""
    first, second = _flatten(_header(a)), _flatten(_header(b))
    return {key for key in first.keys() | second.keys() if first.get(key, KeyError) != second.get(key, KeyError)}


def snapshot_consistency(tables: dict[str, list[dict]]) -> tuple[list[str], int]:
    """Check the archive of the live writer: each run's ``steps_logged`` tag, written in the same transaction as
    the points of that step, must match its histories exactly, and at most one run (the newest) may be unfinished.

    Returns the problems found and the number of whole runs.
    """
    tags = {(r["run_id"], r["key"]): r["value"] for r in tables.get("run_tags", [])}
    points: dict[str, Counter] = defaultdict(Counter)
    steps: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in tables.get("run_metrics", []):
        points[row["run_id"]][row["key"]] += 1
        steps[(row["run_id"], row["key"])].append(row["step"])
    problems, unfinished, whole = [], 0, 0
    for run in tables["runs"]:
        run_id = run["run_id"]
        logged = int(tags.get((run_id, "steps_logged"), 0))
        expected = Counter({f"k{k}": logged for k in range(LIVE_KEYS)}) if logged else Counter()
        if points[run_id] != expected:
            problems.append(f"run {run_id}: tag says {logged} steps, histories hold {dict(points[run_id])}")
        for key in expected:
            if steps[(run_id, key)] != list(range(logged)):
                problems.append(f"run {run_id} key {key}: steps {steps[(run_id, key)]}")
        whole += logged == LIVE_STEPS
        unfinished += logged < LIVE_STEPS
    if unfinished > 1:
        problems.append(f"{unfinished} runs are unfinished; one writer leaves at most one")
    return problems, whole


def rows_restore_keeps(uri: str) -> dict[str, list[tuple]]:
    """``database_rows`` of a database with its runs' deletion times blanked: ``restore`` does not keep them
    (README, "Exact restore into a database"), so a restored run has none."""
    engine = sa.create_engine(uri)
    try:
        names = [c.name for c in sa.Table("runs", sa.MetaData(), autoload_with=engine).c]
    finally:
        engine.dispose()
    where = names.index("deleted_time")
    rows = database_rows(uri)
    rows["runs"] = sorted(row[:where] + ("None",) + row[where + 1 :] for row in rows["runs"])
    return rows
