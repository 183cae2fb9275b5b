"""Round trips of experiments and runs between real ``mlflow server`` processes.

Tests drive the CLI in-process (``tests/archive_cli.py``), except where the process itself
is tested (a shell pipe, MLflow's default store), against servers started by ``tests/servers.py``, and check the
destination field by field with ``tests/compare.py``. The shared data set
(``tests/tracking_data.py``) is built once per session on ``source_server`` and
exported once per module (``full_archive``); tests that only need a few runs make
them on ``scratch_server`` under a ``unique_prefix`` name and import them into the
shared ``dest_server``, so one destination serves them all.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from compare import (
    ARCHIVE_TAG_PREFIX,
    PARENT_TAG,
    SOURCE_EXPERIMENT_TAG,
    SOURCE_RUN_TAG,
    all_runs,
    compare_servers,
    runs_by_source_id,
    server_runs,
)
from mlflow import MlflowClient
from archive_cli import MLFLOW, PROCESS_TIMEOUT, CliResult, export_counts, import_counts, run_process
from archive_cli import export as export_cli
from archive_cli import import_ as import_cli
from archive_cli import run as run_cli
from tracking_data import (
    EXPERIMENT_DELETED,
    EXPERIMENT_MAIN,
    WINDOW_A_STARTS,
    WINDOW_B_STARTS,
    build_small_experiment,
    ms,
)

from tags import IMPORT_STATE_TAG, SOURCE_CREATION_TAG, SOURCE_UPDATE_TAG


def assert_import_summary(proc, **expected: tuple[int, int, int]) -> dict:
    counts = import_counts(proc.stderr_text)
    for object_type, (created, present, failed) in expected.items():
        assert object_type in counts, f"no `{object_type}:` line in the import summary:\n{proc.stderr_text}"
        got = counts[object_type]
        assert got == (created, present, failed), (
            f"{object_type}: expected {created} created, {present} already present, {failed} failed; "
            f"got {got[0]} created, {got[1]} already present, {got[2]} failed. stderr:\n{proc.stderr_text}"
        )
    return counts


def api_export(output, source_uri: str, **options):
    """``export_archive`` in this process (no interpreter start-up); must succeed."""
    from mlflow_archive import export_archive

    summary = export_archive(str(output), tracking_uri=source_uri, **options)
    assert summary.ok, f"export failed: {summary.lines()}"
    return summary


def api_import(archive, dest_uri: str, **options):
    from mlflow_archive import import_archive

    summary = import_archive(str(archive), tracking_uri=dest_uri, **options)
    assert summary.ok, f"import failed: {summary.lines()}"
    return summary


def summary_counts(summary, object_type: str) -> tuple[int, int, int]:
    """(created, already present, failed) of an import summary; (exported, 0, failed) of an export."""
    c = summary.counts.get(object_type)
    if c is None:
        return (0, 0, 0)
    return (c.exported if summary.action == "export" else c.created, c.skipped, c.failed)


def dest_experiment(uri: str, name: str):
    return MlflowClient(tracking_uri=uri).get_experiment_by_name(name)


def experiment_runs(uri: str, experiment_id: str):
    return all_runs(MlflowClient(tracking_uri=uri), [experiment_id])


def imported_source_ids(uri: str, name: str) -> set[str]:
    experiment = dest_experiment(uri, name)
    if experiment is None:
        return set()
    return {r.data.tags.get(SOURCE_RUN_TAG) for r in experiment_runs(uri, experiment.experiment_id)}


# -- the shared export ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_archive(tracking_dataset, source_server, tmp_path_factory):
    """One export of the whole data set, deleted objects included, by the CLI to a file.

    The source server is given through MLFLOW_TRACKING_URI, as a user would.
    """
    path = tmp_path_factory.mktemp("full-archive") / "full.mlar"
    proc = run_cli(
        "export", "-o", path, "--export-deleted-runs", "--export-deleted-experiments", "--quiet",
        tracking_uri=source_server.url,
    )
    assert path.is_file() and path.stat().st_size > 0
    return path, proc


@pytest.fixture(scope="module")
def roundtrip_import(full_archive, module_dest_server):
    """The full archive imported once into an empty destination (checked by the tests)."""
    return import_cli(full_archive[0], module_dest_server.url, check=False)


def assert_import_and_compare(proc, source_uri: str, dest_uri: str, **compare_options):
    """Fail with both the import's failure (if any) and every difference it left, in one message."""
    comparison = compare_servers(source_uri, dest_uri, raise_on_difference=False, **compare_options)
    problems = []
    if proc.returncode != 0:
        problems.append(f"import exited with {proc.returncode}; stderr:\n{proc.stderr_text[-4000:]}")
    if not comparison.ok:
        problems.append(comparison.report())
    assert not problems, "\n\n".join(problems)
    return comparison


# -- 1. the full round trip ----------------------------------------------------------------


def test_full_roundtrip(tracking_dataset, source_server, module_dest_server, full_archive, roundtrip_import):
    data = tracking_dataset
    _, export_proc = full_archive
    exported = export_counts(export_proc.stderr_text)
    assert exported.get("runs") == len(data.all_run_ids), f"export summary:\n{export_proc.stderr_text}"
    assert exported.get("experiments", 0) >= len(data.experiment_ids), f"export summary:\n{export_proc.stderr_text}"

    comparison = assert_import_and_compare(roundtrip_import, source_server.url, module_dest_server.url, exact=True)
    assert comparison.compared_runs == len(data.all_run_ids)
    created = import_counts(roundtrip_import.stderr_text)
    assert created.get("runs") == (len(data.all_run_ids), 0, 0), f"import summary:\n{roundtrip_import.stderr_text}"
    experiments_created, experiments_present, experiments_failed = created["experiments"]
    assert experiments_failed == 0 and experiments_created == len(data.experiment_ids), roundtrip_import.stderr_text
    assert experiments_created + experiments_present == exported["experiments"], roundtrip_import.stderr_text

    # provenance tags carry the source IDs
    dest = MlflowClient(tracking_uri=module_dest_server.url)
    for name, source_id in data.experiment_ids.items():
        assert dest.get_experiment_by_name(name).tags.get(SOURCE_EXPERIMENT_TAG) == source_id

    # nested runs point at their destination parents
    run_map = comparison.run_map
    parent, child, grandchild = (dest.get_run(run_map[data.runs[r]]) for r in ("parent", "child", "grandchild"))
    assert PARENT_TAG not in parent.data.tags
    assert child.data.tags[PARENT_TAG] == parent.info.run_id
    assert grandchild.data.tags[PARENT_TAG] == child.info.run_id
    for role, run in (("parent", parent), ("child", child), ("grandchild", grandchild)):
        assert run.data.tags.get(SOURCE_RUN_TAG) == data.runs[role], f"{role}: the run map does not lead back to its source"

    # deleted objects arrive deleted
    assert dest.get_run(run_map[data.runs["deleted"]]).info.lifecycle_stage == "deleted"
    assert dest.get_experiment_by_name(EXPERIMENT_DELETED).lifecycle_stage == "deleted"
    doomed = dest.get_run(run_map[data.runs["in_deleted_experiment"]])
    assert doomed.info.experiment_id == dest.get_experiment_by_name(EXPERIMENT_DELETED).experiment_id
    assert doomed.info.lifecycle_stage == "deleted"
    assert dest.get_run(run_map[data.runs["running"]]).info.status == "RUNNING"

    # without --import-source-tags, no source times are written
    main = dest.get_experiment_by_name(EXPERIMENT_MAIN)
    assert SOURCE_CREATION_TAG not in main.tags and SOURCE_UPDATE_TAG not in main.tags


# -- 2. importing twice --------------------------------------------------------------------


def test_import_twice_creates_nothing(tracking_dataset, source_server, module_dest_server, full_archive, roundtrip_import):
    assert roundtrip_import.returncode == 0, f"the first import failed (see test_full_roundtrip):\n{roundtrip_import.stderr_text}"
    before = sorted(r.info.run_id for r in server_runs(module_dest_server.url))
    again = import_cli(full_archive[0], module_dest_server.url)
    counts = import_counts(again.stderr_text)
    assert counts.get("experiments", (None,))[0] == 0, f"second import created experiments:\n{again.stderr_text}"
    assert counts.get("runs") == (0, len(tracking_dataset.all_run_ids), 0), f"second import:\n{again.stderr_text}"
    assert counts["experiments"][2] == 0
    after = sorted(r.info.run_id for r in server_runs(module_dest_server.url))
    assert after == before
    assert all(len(runs) == 1 for runs in runs_by_source_id(module_dest_server.url, include_abandoned=True).values())


# -- 3. a shell pipe -------------------------------------------------------------------------


def test_shell_pipe(tracking_dataset, source_server, fresh_dest_server):
    script = (
        "set -o pipefail; "
        f"{shlex.quote(MLFLOW)} archive export -o - --tracking-uri {shlex.quote(source_server.url)} "
        "--export-deleted-runs --export-deleted-experiments --quiet "
        f"| {shlex.quote(MLFLOW)} archive import -i - --tracking-uri {shlex.quote(fresh_dest_server.url)} --quiet"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    piped = subprocess.run(["bash", "-c", script], check=False, capture_output=True, env=env, timeout=PROCESS_TIMEOUT)
    proc = CliResult(script, piped.returncode, piped.stdout.decode("utf-8", "replace"), piped.stderr.decode("utf-8", "replace"))
    assert_import_and_compare(proc, source_server.url, fresh_dest_server.url, exact=True)
    stderr = proc.stderr_text
    assert export_counts(stderr).get("runs") == len(tracking_dataset.all_run_ids), stderr
    assert import_counts(stderr).get("runs") == (len(tracking_dataset.all_run_ids), 0, 0), stderr
    assert proc.stdout_text == "", "the import printed to stdout"


# -- 4. an existing experiment of the same name ----------------------------------------------


def test_import_into_existing_experiment(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}shared 实验"
    source = build_small_experiment(scratch_server.url, name, n_runs=2)

    dest = MlflowClient(tracking_uri=dest_server.url)
    existing_id = dest.create_experiment(name, tags={"owner": "destination"})
    unrelated = dest.create_run(existing_id, run_name="unrelated", tags={"keep": "me"}).info.run_id
    dest.log_param(unrelated, "p", "dest")
    dest.log_metric(unrelated, "m", 7.0, timestamp=123, step=3)
    dest.log_text(unrelated, "untouched", "u.txt")
    dest.set_terminated(unrelated, "FINISHED", end_time=456_000)
    before = dest.get_run(unrelated)

    archive = tmp_path / "one.mlar"
    api_export(archive, scratch_server.url, experiments=name)
    summary = api_import(archive, dest_server.url)
    assert summary_counts(summary, "experiments") == (0, 1, 0), summary.lines()
    assert summary_counts(summary, "runs") == (2, 0, 0), summary.lines()

    experiment = dest.get_experiment_by_name(name)
    assert experiment.experiment_id == existing_id
    assert experiment.tags.get("owner") == "destination"
    runs = experiment_runs(dest_server.url, existing_id)
    assert len(runs) == 3
    assert {r.data.tags.get(SOURCE_RUN_TAG) for r in runs} == {None, *source.run_ids}

    after = dest.get_run(unrelated)
    assert after.data.params == before.data.params
    assert after.data.tags == before.data.tags
    assert not any(k.startswith(ARCHIVE_TAG_PREFIX) for k in after.data.tags)
    assert [(m.value, m.timestamp, m.step) for m in dest.get_metric_history(unrelated, "m")] == [(7.0, 123, 3)]
    assert (after.info.status, after.info.end_time, after.info.lifecycle_stage) == ("FINISHED", 456_000, "active")
    assert [f.path for f in dest.list_artifacts(unrelated)] == ["u.txt"]

    compare_servers(
        scratch_server.url, dest_server.url, experiment_names=[name],
        compare_experiment_tags=False, require_experiment_source_tag=False,
    )


# -- 5. a time window ------------------------------------------------------------------------

EARLY_START = ms(2020, 1, 15)


@pytest.mark.parametrize(
    "since, until, expected, via",
    [
        ("2021-03-01", "2021-04-01", "A", "cli"),
        ("2022-06-01 00:00:00", None, "B", "api"),
        (None, "2021-12-31 23:59:59", "early+A", "api"),
    ],
    ids=["both-bounds-cli", "since-only-api", "until-only-api"],
)
def test_time_window(scratch_server, dest_server, unique_prefix, tmp_path, since, until, expected, via):
    name = f"{unique_prefix}windows"
    starts = [EARLY_START, *WINDOW_A_STARTS, *WINDOW_B_STARTS]
    source = build_small_experiment(scratch_server.url, name, start_times=starts)
    by_start = dict(zip(starts, source.run_ids))
    groups = {
        "A": {by_start[s] for s in WINDOW_A_STARTS},
        "B": {by_start[s] for s in WINDOW_B_STARTS},
        "early+A": {by_start[EARLY_START]} | {by_start[s] for s in WINDOW_A_STARTS},
    }
    wanted = groups[expected]

    archive = tmp_path / "window.mlar"
    if via == "cli":
        options = ["--experiments", name]
        if since:
            options += ["--run-start-time", since]
        if until:
            options += ["--runs-until", until]
        export = export_cli(archive, scratch_server.url, *options)
        assert export_counts(export.stderr_text).get("runs") == len(wanted), export.stderr_text
    else:
        summary = api_export(archive, scratch_server.url, experiments=name, run_start_time=since, runs_until=until)
        assert summary_counts(summary, "runs")[0] == len(wanted), summary.lines()
    summary = api_import(archive, dest_server.url)
    assert summary_counts(summary, "runs") == (len(wanted), 0, 0), summary.lines()

    assert imported_source_ids(dest_server.url, name) == wanted
    compare_servers(
        scratch_server.url, dest_server.url, experiment_names=[name],
        run_filter=lambda run: run.info.run_id in wanted,
    )


# -- 6. selecting experiments ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["name", "id", "prefix", "names-and-ids", "txt-file"])
def test_experiment_selection(scratch_server, dest_server, unique_prefix, tmp_path, how):
    p = unique_prefix
    made = {
        key: build_small_experiment(scratch_server.url, f"{p}{key}", n_runs=1)
        for key in ("a-one ü", "a-two", "b-three")
    }
    ids = {key: exp.experiment_id for key, exp in made.items()}
    if how == "name":
        selector, expected = f"{p}a-two", {"a-two"}
    elif how == "id":
        selector, expected = ids["b-three"], {"b-three"}
    elif how == "prefix":
        selector, expected = f"{p}a-*", {"a-one ü", "a-two"}
    elif how == "names-and-ids":
        selector, expected = f"{p}a-one ü,{ids['b-three']}", {"a-one ü", "b-three"}
    else:
        listing = tmp_path / "experiments.txt"
        listing.write_text(f"{p}a-two\n{ids['b-three']}\n", encoding="utf-8")
        selector, expected = str(listing), {"a-two", "b-three"}

    archive = tmp_path / "selected.mlar"
    if how in ("prefix", "txt-file"):  # through the CLI option; the others through the Python API
        export = export_cli(archive, scratch_server.url, "--experiments", selector)
        counts = export_counts(export.stderr_text)
        assert counts.get("experiments") == len(expected), export.stderr_text
        assert counts.get("runs") == len(expected), export.stderr_text
    else:
        summary = api_export(archive, scratch_server.url, experiments=selector)
        assert summary_counts(summary, "experiments")[0] == len(expected), summary.lines()
        assert summary_counts(summary, "runs")[0] == len(expected), summary.lines()
    summary = api_import(archive, dest_server.url)
    assert summary_counts(summary, "experiments") == (len(expected), 0, 0), summary.lines()
    assert summary_counts(summary, "runs") == (len(expected), 0, 0), summary.lines()

    present = {key for key in made if dest_experiment(dest_server.url, f"{p}{key}") is not None}
    assert present == expected
    compare_servers(scratch_server.url, dest_server.url, experiment_names=[f"{p}{key}" for key in expected])


# -- 7. source times as tags -----------------------------------------------------------------


def test_import_source_tags(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}with source times"
    build_small_experiment(scratch_server.url, name, n_runs=1, tags={"kept": "yes"})
    source_experiment = MlflowClient(tracking_uri=scratch_server.url).get_experiment_by_name(name)

    archive = tmp_path / "times.mlar"
    api_export(archive, scratch_server.url, experiments=name)
    import_cli(archive, dest_server.url, "--import-source-tags")

    imported = dest_experiment(dest_server.url, name)
    assert imported is not None
    assert imported.tags.get(SOURCE_CREATION_TAG) == str(source_experiment.creation_time), imported.tags
    assert imported.tags.get(SOURCE_UPDATE_TAG) == str(source_experiment.last_update_time), imported.tags
    assert imported.tags.get(SOURCE_EXPERIMENT_TAG) == source_experiment.experiment_id
    compare_servers(scratch_server.url, dest_server.url, experiment_names=[name])


# -- 8. renaming experiments -----------------------------------------------------------------


def test_experiment_rename_file(scratch_server, dest_server, unique_prefix, tmp_path):
    old, new = f"{unique_prefix}old name ü", f"{unique_prefix}new name 🚀"
    untouched = f"{unique_prefix}not renamed"
    build_small_experiment(scratch_server.url, old, n_runs=2)
    build_small_experiment(scratch_server.url, untouched, n_runs=1)

    archive = tmp_path / "rename.mlar"
    api_export(archive, scratch_server.url, experiments=f"{unique_prefix}*")
    rename_file = tmp_path / "rename.csv"
    rename_file.write_text(f"old,new\n{old},{new}\n", encoding="utf-8")
    proc = import_cli(archive, dest_server.url, "--experiment-rename-file", rename_file)
    assert_import_summary(proc, experiments=(2, 0, 0), runs=(3, 0, 0))

    assert dest_experiment(dest_server.url, old) is None
    assert dest_experiment(dest_server.url, new) is not None
    assert dest_experiment(dest_server.url, untouched) is not None
    compare_servers(scratch_server.url, dest_server.url, experiment_names=[old, untouched], rename={old: new})
    renamed = dest_experiment(dest_server.url, new)
    assert SOURCE_CREATION_TAG not in renamed.tags  # only with --import-source-tags


# -- 9. the default tracking URI ---------------------------------------------------------------

LOG_ONE_RUN = """
import mlflow
print(mlflow.get_tracking_uri())
with mlflow.start_run(run_name="default store run"):
    mlflow.log_param("p", "1")
    mlflow.log_metric("m", 2.0)
"""


def test_default_tracking_uri(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")}
    logged = subprocess.run(
        [sys.executable, "-c", LOG_ONE_RUN], check=False, capture_output=True, env=env, cwd=tmp_path, timeout=PROCESS_TIMEOUT
    )
    assert logged.returncode == 0, logged.stderr.decode("utf-8", "replace")
    uri = logged.stdout.decode().strip().splitlines()[-1]
    assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}", uri  # MLflow 3's default store
    assert (tmp_path / "mlflow.db").is_file()

    # A process of its own: in this one, earlier tests may have set MLflow's process-wide tracking URI.
    run_process("export", "-o", "out.mlar", "--quiet", cwd=tmp_path)
    assert (tmp_path / "out.mlar").is_file()
    info = json.loads(run_cli("inspect", "out.mlar", "--json", cwd=tmp_path).stdout_text)
    assert info["counts"].get("runs") == 1, info["counts"]
    source_uri = info["header"]["source"]["tracking_uri"]
    assert source_uri.startswith("sqlite:///") and source_uri.endswith("mlflow.db"), info["header"]["source"]


# -- 10. a damaged archive leaves a destination that can be finished -------------------------


def _cut_points(path: Path) -> list[tuple[int, str]]:
    """(offset, member) pairs halfway into the metrics (runs created, params and tags logged)
    and into the artifacts (nearly everything logged): both leave runs incomplete."""
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.size > 0]
    names = [m.name for m in members]
    chosen = [next((m for m in members if needle in m.name), None) for needle in ("run_metrics", "/artifacts-")]
    assert None not in chosen, f"no metrics or artifacts member among {names}"
    return sorted({(m.offset_data + max(m.size // 2, 1), m.name) for m in chosen})


def _run_states(url: str) -> dict[str, str | None]:
    return {r.info.run_id: r.data.tags.get(IMPORT_STATE_TAG) for r in server_runs(url)}


def test_truncated_archive_then_full_import(tracking_dataset, source_server, fresh_dest_server, full_archive, tmp_path):
    path, _ = full_archive
    data = path.read_bytes()
    for cut, member in _cut_points(path):
        truncated = tmp_path / f"truncated-{cut}.mlar"
        truncated.write_bytes(data[:cut])
        where = f"archive cut at byte {cut} of {len(data)} (inside {member})"
        # Checked first by default: nothing reaches the destination. With --no-verify the damage is
        # found only as it is read, as for a stream, and leaves partial runs for the next import.
        before = _run_states(fresh_dest_server.url)
        import_cli(truncated, fresh_dest_server.url, check=False).error_line(where)
        assert _run_states(fresh_dest_server.url) == before, f"{where}: a damaged file reached the destination"
        unverified = import_cli(truncated, fresh_dest_server.url, "--no-verify", check=False)
        unverified.error_line(where)
        assert "were left partial, and the same command with a good copy" in unverified.stderr_text, unverified.describe()
        states = set(_run_states(fresh_dest_server.url).values())
        assert "partial" in states, f"{where}: --no-verify left no partial run to finish ({states})"

    proc = import_cli(path, fresh_dest_server.url, check=False)
    assert "left partial by an interrupted import were deleted" in proc.stderr_text, proc.stderr_text
    # abandoned leftovers of the interrupted imports must be deleted (compare checks) and
    # must not count as imported runs
    assert_import_and_compare(proc, source_server.url, fresh_dest_server.url, exact=True)
    created, present, failed = import_counts(proc.stderr_text)["runs"]
    assert failed == 0 and created + present == len(tracking_dataset.all_run_ids), proc.stderr_text
    live = [r for r in server_runs(fresh_dest_server.url) if r.info.lifecycle_stage == "active"]
    expected_live = len(tracking_dataset.all_run_ids) - len(tracking_dataset.deleted_run_ids)
    assert len(live) == expected_live, sorted((r.info.run_name, r.info.run_id) for r in live)
    assert all(len(runs) == 1 for runs in runs_by_source_id(fresh_dest_server.url).values())
