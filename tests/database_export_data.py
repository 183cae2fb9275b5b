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


def header(path) -> dict:
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
    first, second = _flatten(header(a)), _flatten(header(b))
    return {key for key in first.keys() | second.keys() if first.get(key, KeyError) != second.get(key, KeyError)}


def snapshot_consistency(tables: dict[str, list[dict]]) -> tuple[list[str], int]:
    """Check the archive of the live writer against what one instant of its database can hold.

    MLflow's SQL store writes a ``log_batch`` as three transactions, metrics first, then tags
    (``SqlAlchemyStore.log_batch``: ``_log_metrics`` and ``_set_tags`` each open their own session). So at any
    instant every key of a run has the same steps ``0..n-1`` (one step's points for all keys commit together),
    and the ``steps_logged`` tag says ``n`` or, between the two commits, ``n - 1``; only the newest run is unfinished.
    Reads at different instants break this: a key read later holds more steps than one read earlier.

    Returns the problems found and the number of whole runs.
    """
    tags = {(r["run_id"], r["key"]): r["value"] for r in tables.get("run_tags", [])}
    steps: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in tables.get("run_metrics", []):
        steps[row["run_id"]][row["key"]].append(row["step"])
    problems, unfinished, whole = [], 0, 0
    for run in tables["runs"]:
        run_id, histories = run["run_id"], steps[run["run_id"]]
        logged = max((len(h) for h in histories.values()), default=0)
        expected = {f"k{k}": list(range(logged)) for k in range(LIVE_KEYS)} if logged else {}
        if histories != expected:
            problems.append(f"run {run_id}: steps per key {Counter({k: len(h) for k, h in histories.items()})}")
        tag = int(tags.get((run_id, "steps_logged"), 0))
        if tag not in (logged, logged - 1):
            problems.append(f"run {run_id}: {logged} steps of metrics, but its tag says {tag}")
        whole += logged == LIVE_STEPS
        unfinished += logged < LIVE_STEPS
    if unfinished > 1:
        problems.append(f"{unfinished} runs are unfinished; one writer leaves at most one")
    return problems, whole


def rows_restore_keeps(uri: str, archive) -> dict[str, list[tuple]]:
    """``database_rows`` of a database with its deleted runs' deletion times set to the ``archive``'s export
    start: the archive carries none, and ``restore`` gives them that (README, "Exact restore into a database")."""
    engine = sa.create_engine(uri)
    try:
        names = [c.name for c in sa.Table("runs", sa.MetaData(), autoload_with=engine).c]
    finally:
        engine.dispose()
    with open(archive, "rb") as stream:
        export_start = repr(ArchiveReader(stream).header["export"]["started_at_ms"])
    where, stage = names.index("deleted_time"), names.index("lifecycle_stage")
    rows = database_rows(uri)
    rows["runs"] = sorted(
        row[:where] + (export_start if row[stage] == "'deleted'" else "None",) + row[where + 1 :] for row in rows["runs"]
    )
    return rows


def table_differences(first: dict[str, list[dict]], second: dict[str, list[dict]], limit: int = 5) -> list[str]:
    """Field-by-field differences between the decoded tables of two archives (NaN equals NaN)."""
    diffs = [f"table {name} only in one archive" for name in sorted(first.keys() ^ second.keys())]
    for name in sorted(first.keys() & second.keys()):
        a, b = first[name], second[name]
        if len(a) != len(b):
            diffs.append(f"table {name}: {len(a)} rows against {len(b)}")
            continue
        for index, (row_a, row_b) in enumerate(zip(a, b)):
            for field in row_a.keys() | row_b.keys():
                if repr(row_a.get(field)) != repr(row_b.get(field)):
                    diffs.append(f"table {name} row {index} {field}: {row_a.get(field)!r:.2000} against {row_b.get(field)!r:.2000}")
    return diffs[:limit] if limit else diffs
