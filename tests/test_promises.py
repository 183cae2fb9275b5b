"""README promises that no round-trip test covers on its way: outputs, selectors through the CLI,
time windows, the export cut-off, import options, the summary, rewrites and registry edge cases.

Everything runs on the shared servers (``scratch_server`` as source, ``dest_server`` as destination)
under ``unique_prefix`` names, with the CLI in-process (``tests/archive_cli.py``) except where a real
process is what is tested (a terminal, a shell without this package).
"""

from __future__ import annotations

import calendar
import json
import os
import pty
import re
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Metric

import archive_cli
from archive_tables import archive_contents, column
from compare import all_runs
from flaky_proxy import FlakyProxy
from mlflow_archive import export_archive, inspect_archive
from models_data import model_versions
from tags import (
    ARCHIVE_TAG_PREFIX,
    LOG_MODEL_HISTORY_TAG,
    SOURCE_EXPERIMENT_TAG,
    SOURCE_RUN_TAG,
    SOURCE_TAG_PREFIX,
    SOURCE_VERSION_TAG,
    USER_TAG,
)
from tracking_data import build_small_experiment


def dest_runs(uri: str, experiment_name: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"experiment {experiment_name!r} is not on {uri}"
    return all_runs(client, [experiment.experiment_id])


# -- export outputs ---------------------------------------------------------------------------


def test_partial_name_until_complete_and_no_final_name_on_failure(scratch_server, unique_prefix, tmp_path):
    """While the export runs only ``NAME.<random>.partial`` exists; a source lost midway leaves neither name."""
    name = f"{unique_prefix}partial"
    build_small_experiment(scratch_server.url, name, n_runs=2)
    output = tmp_path / "out.mlar"
    midway, release, lost = threading.Event(), threading.Event(), threading.Event()

    def hold_first_artifact_then_vanish(n, method, path):
        if lost.is_set():
            return "drop"
        if "mlflow-artifacts" in path:  # runs and their metadata are read; the archive is being written
            midway.set()
            release.wait(60)
            lost.set()
            return "drop"
        return None

    outcome: dict = {}

    def run_export(url: str) -> None:
        try:
            outcome["summary"] = export_archive(str(output), tracking_uri=url, experiments=name, quiet=True)
        except Exception as exc:  # the export's own error, checked below
            outcome["error"] = exc

    with FlakyProxy(scratch_server.url, hold_first_artifact_then_vanish) as proxy:
        exporting = threading.Thread(target=run_export, args=(proxy.url,))
        exporting.start()
        try:
            assert midway.wait(60), "the export never asked for an artifact"
            listing = sorted(p.name for p in tmp_path.iterdir())
        finally:
            proxy.vanish()
            release.set()
            exporting.join(120)
    assert len(listing) == 1 and re.fullmatch(r"out\.mlar\.[0-9a-f]{16}\.partial", listing[0]), f"midway through the export: {listing}"
    assert not exporting.is_alive(), "the export did not end after its source went away"
    assert "error" in outcome, f"the export succeeded without its source: {outcome}"
    assert list(tmp_path.iterdir()) == [], f"a failed export left {list(tmp_path.iterdir())}"


def test_pyarrow_filesystem_uri(scratch_server, unique_prefix, tmp_path):
    """A ``file://`` URI (percent-encoded) names a local file; other schemes go through pyarrow's filesystems."""
    name = f"{unique_prefix}file uri"
    made = build_small_experiment(scratch_server.url, name, n_runs=2)
    target = tmp_path / "sub dir" / "via uri.mlar"
    target.parent.mkdir()
    archive_cli.export(target.as_uri(), scratch_server.url, "--experiments", name)
    assert target.is_file(), list(target.parent.iterdir())
    verified = archive_cli.run("verify", target.as_uri())
    assert verified.stdout_text.startswith("OK:"), verified.describe()
    assert column(target, "runs", "run_id") == set(made.run_ids)
    assert list(target.parent.iterdir()) == [target]

    # pyarrow's in-memory filesystem: the bytes go through pyarrow's output stream, and vanish with it
    written = archive_cli.export("mock:///in-memory.mlar", scratch_server.url, "--experiments", name)
    assert archive_cli.export_counts(written.stderr_text).get("runs") == 2, written.describe()


# -- selecting experiments through the CLI ------------------------------------------------------


@pytest.mark.parametrize("how", ["all", "experiment-ids-alias", "comma-list"])
def test_experiment_selectors_through_cli(scratch_server, unique_prefix, tmp_path, how):
    p = unique_prefix
    made = {key: build_small_experiment(scratch_server.url, f"{p}{key}", n_runs=1) for key in ("one", "two", "three")}
    gone = build_small_experiment(scratch_server.url, f"{p}deleted", n_runs=1)
    MlflowClient(tracking_uri=scratch_server.url).delete_experiment(gone.experiment_id)
    archive = tmp_path / "selected.mlar"
    if how == "all":
        options, expected = ["--experiments", "all"], {"one", "two", "three"}
    elif how == "experiment-ids-alias":
        options, expected = ["--experiment-ids", f"{made['one'].experiment_id},{made['three'].experiment_id}"], {"one", "three"}
    else:
        options, expected = ["--experiments", f"{p}two,{made['three'].experiment_id}"], {"two", "three"}
    archive_cli.export(archive, scratch_server.url, *options)

    names = column(archive, "experiments", "name")
    ours = {n.removeprefix(p) for n in names if n.startswith(p)}
    assert ours == expected, f"{options}: exported {sorted(ours)} (deleted experiments stay out by default)"
    run_ids = column(archive, "runs", "run_id")
    assert {r for e in expected for r in made[e].run_ids} <= run_ids
    assert not run_ids & ({r for e in set(made) - expected for r in made[e].run_ids} | set(gone.run_ids))
    if how != "all":
        assert names == {f"{p}{e}" for e in expected}


# -- the time window ----------------------------------------------------------------------------


def utc_ms(*fields: int) -> int:
    """Milliseconds since the epoch of a UTC (year, month, day, hour, minute, second)."""
    return calendar.timegm(fields) * 1000


@pytest.fixture
def far_from_utc(monkeypatch):
    """A local time zone hours away from UTC, so a window read as local time would select other runs."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # UTC+05:45
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_time_window_bounds_are_utc_and_half_open(scratch_server, unique_prefix, tmp_path, far_from_utc):
    start, until = utc_ms(2021, 3, 1, 10, 0, 0), utc_ms(2021, 3, 2, 10, 0, 0)
    offsets = {"start-1": start - 1, "start": start, "start+1": start + 1, "until-1": until - 1, "until": until, "until+1": until + 1}
    name = f"{unique_prefix}window bounds"
    made = build_small_experiment(scratch_server.url, name, start_times=list(offsets.values()))
    by_label = dict(zip(offsets, made.run_ids))

    archive = tmp_path / "window.mlar"
    archive_cli.export(
        archive, scratch_server.url, "--experiments", name,
        "--run-start-time", "2021-03-01 10:00:00", "--runs-until", "2021-03-02 10:00:00",
    )
    exported = {label for label, run_id in by_label.items() if run_id in column(archive, "runs", "run_id")}
    assert exported == {"start", "start+1", "until-1"}


# -- selecting registered models ------------------------------------------------------------------


@dataclass
class SmallRegistry:
    prefix: str
    experiments: dict[str, str]  # role -> name
    runs: dict[str, str]  # role -> run ID
    models: dict[str, str]  # role -> registered model name
    logged_model: str


@pytest.fixture(scope="module")
def small_registry(scratch_server) -> SmallRegistry:
    """Experiment E (runs r1, r2, r3) and F (run r4); model M1 with versions 1 (r1), 2 (r2, Staging),
    3 (r1, Production), 4 (r2), version 1 updated last; model M2 with version 1 (r4); a logged model of r1."""
    prefix = f"registry-{uuid.uuid4().hex[:8]}-"
    client = MlflowClient(tracking_uri=scratch_server.url)
    experiments = {"E": f"{prefix}E", "F": f"{prefix}F"}
    ids = {role: client.create_experiment(name) for role, name in experiments.items()}
    runs = {}
    for role, experiment in (("r1", "E"), ("r2", "E"), ("r3", "E"), ("r4", "F")):
        run_id = client.create_run(ids[experiment], run_name=role).info.run_id
        client.log_text(run_id, "not really a model", "model/MLmodel")
        client.set_terminated(run_id)
        runs[role] = run_id
    logged = client.create_logged_model(ids["E"], name="lm", source_run_id=runs["r1"])
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    models = {"M1": f"{prefix}M1", "M2": f"{prefix}M2"}
    for role, versions in (("M1", [("r1", None), ("r2", "Staging"), ("r1", "Production"), ("r2", None)]), ("M2", [("r4", None)])):
        client.create_registered_model(models[role])
        for run_role, stage in versions:
            version = client.create_model_version(models[role], f"runs:/{runs[run_role]}/model", run_id=runs[run_role])
            if stage:
                client.transition_model_version_stage(models[role], version.version, stage)
    # A search lists the most recently updated version first: of stage None, version 1 before the higher 4, so
    # --export-latest-versions is right only if it compares numbers, not if it keeps the first version it sees.
    client.update_model_version(models["M1"], "1", description="updated after version 4")
    unstaged = [v.version for v in client.search_model_versions(f"name = '{models['M1']}'") if v.current_stage == "None"]
    assert [int(v) for v in unstaged] == [1, 4]
    return SmallRegistry(prefix, experiments, runs, models, logged.model_id)


SELECTIONS = {
    # id: (options, expected registered models, versions, runs, experiments); "+" marks a superset check
    "models-comma": (["--models", "{M1},{M2}"], {"M1", "M2"}, {"M1/1", "M1/2", "M1/3", "M1/4", "M2/1"}, {"r1", "r2", "r4"}, {"E", "F"}),
    "models-txt": (["--models", "@txt:{M2}"], {"M2"}, {"M2/1"}, {"r4"}, {"F"}),
    "models-all": (["--models", "all"], "+", {"M1/1", "M1/2", "M1/3", "M1/4", "M2/1"}, {"r1", "r2", "r4"}, {"E", "F"}),
    "export-all-runs": (["--models", "{M1}", "--export-all-runs"], {"M1"}, {"M1/1", "M1/2", "M1/3", "M1/4"}, {"r1", "r2", "r3"}, {"E"}),
    "latest-versions": (["--models", "{M1}", "--export-latest-versions"], {"M1"}, {"M1/2", "M1/3", "M1/4"}, {"r1", "r2"}, {"E"}),
    "stages": (["--models", "{M1}", "--stages", "Production,Staging"], {"M1"}, {"M1/2", "M1/3"}, {"r1", "r2"}, {"E"}),
    "versions": (["--models", "{M1}", "--versions", "1,4"], {"M1"}, {"M1/1", "M1/4"}, {"r1", "r2"}, {"E"}),
    # Every run starts now, before the window: the versions' runs come as dependencies, the others stay out.
    "window-and-models": (["--experiments", "{E}", "--models", "{M1}", "--run-start-time", "2999-01-01"], {"M1"},
                          {"M1/1", "M1/2", "M1/3", "M1/4"}, {"r1", "r2"}, {"E"}),
    "stages-and-versions": (["--models", "{M1}", "--stages", "Production", "--versions", "1,3"], {"M1"}, {"M1/3"}, {"r1"}, {"E"}),
    "experiments-and-models": (["--experiments", "{F}", "--models", "{M1}"], {"M1"}, {"M1/1", "M1/2", "M1/3", "M1/4"}, {"r1", "r2", "r4"}, {"E", "F"}),
    "experiments-alone": (["--experiments", "{E}"], set(), set(), {"r1", "r2", "r3"}, {"E"}),
    "logged-models": (["--logged-models", "{LM}"], set(), set(), {"r1"}, {"E"}),
}


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_registry_selectors(scratch_server, small_registry, tmp_path, selection):
    reg = small_registry
    options, models, versions, runs, experiments = SELECTIONS[selection]
    names = {**reg.models, **reg.experiments, "LM": reg.logged_model}
    filled = []
    for option in options:
        if option.startswith("@txt:"):
            listing = tmp_path / "models.txt"
            listing.write_text(option.removeprefix("@txt:").format(**names) + "\n", encoding="utf-8")
            option = str(listing)
        filled.append(option.format(**names))
    archive = tmp_path / "registry.mlar"
    archive_cli.export(archive, scratch_server.url, *filled)
    tables, _ = archive_contents(archive)

    role_of = {v: k for k, v in {**reg.models, **reg.experiments, **reg.runs}.items()}
    got_models = {role_of[r["name"]] for r in tables.get("registered_models", []) if r["name"] in role_of}
    if models == "+":
        assert {r["name"] for r in tables["registered_models"]} >= set(reg.models.values())
        models = set(reg.models)
    else:
        assert len(tables.get("registered_models", [])) == len(models), tables.get("registered_models")
    assert got_models == models
    got_versions = {f"{role_of[r['name']]}/{r['version']}" for r in tables.get("model_versions", []) if r["name"] in role_of}
    assert got_versions == versions
    assert {role_of[r["run_id"]] for r in tables.get("runs", []) if r["run_id"] in role_of} == runs
    assert {role_of[r["name"]] for r in tables.get("experiments", []) if r["name"] in role_of} == experiments
    logged = {r["model_id"] for r in tables.get("logged_models", [])}
    if selection == "logged-models":
        assert logged == {reg.logged_model}
    if selection == "experiments-alone":
        assert logged == {reg.logged_model} and "prompts" not in tables


# -- the export cut-off -------------------------------------------------------------------------


def test_cutoff_leaves_later_runs_out_and_lists_running_ones(scratch_server, unique_prefix, tmp_path):
    client = MlflowClient(tracking_uri=scratch_server.url)
    name = f"{unique_prefix}cutoff"
    experiment_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    finished = client.create_run(experiment_id, start_time=now - 60_000, run_name="finished").info.run_id
    client.set_terminated(finished, end_time=now - 30_000)
    running = client.create_run(experiment_id, start_time=now - 10_000, run_name="running").info.run_id
    later = client.create_run(experiment_id, start_time=now + 3_600_000, run_name="starts after the export began").info.run_id

    archive = tmp_path / "cutoff.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name)
    assert column(archive, "runs", "run_id") == {finished, running}, f"the later run is {later}"
    export_header = inspect_archive(str(archive))["header"]["export"]
    assert export_header["running_runs"] == [running]
    assert now <= export_header["cutoff_time_ms"] < now + 3_600_000


# -- import options -----------------------------------------------------------------------------


def test_import_source_tags_every_one_and_no_credentials(scratch_server, dest_server, small_registry, tmp_path):
    reg = small_registry
    secret = f"s3cr3t{uuid.uuid4().hex[:6]}"
    with_credentials = scratch_server.url.replace("http://", f"http://archivist:{secret}@")
    archive = tmp_path / "tagged.mlar"
    exported = archive_cli.export(archive, with_credentials, "--experiments", reg.experiments["F"], "--models", reg.models["M2"])
    imported = archive_cli.import_(archive, dest_server.url, "--import-source-tags")

    src, dst = MlflowClient(tracking_uri=scratch_server.url), MlflowClient(tracking_uri=dest_server.url)
    source_experiment = src.get_experiment_by_name(reg.experiments["F"])
    tags = dst.get_experiment_by_name(reg.experiments["F"]).tags
    expected = {
        "experiment_id": source_experiment.experiment_id,
        "tracking_uri": scratch_server.url,
        "artifact_location": source_experiment.artifact_location,
        "creation_time": str(source_experiment.creation_time),
        "last_update_time": str(source_experiment.last_update_time),
    }
    assert {k: tags.get(SOURCE_TAG_PREFIX + k) for k in expected} == expected, tags
    assert tags.get(SOURCE_EXPERIMENT_TAG) == source_experiment.experiment_id
    (run,) = dest_runs(dest_server.url, reg.experiments["F"])
    assert run.data.tags.get(SOURCE_RUN_TAG) == reg.runs["r4"]

    source_model, model = src.get_registered_model(reg.models["M2"]), dst.get_registered_model(reg.models["M2"])
    assert model.tags.get(SOURCE_TAG_PREFIX + "creation_timestamp") == str(source_model.creation_timestamp), model.tags
    assert model.tags.get(SOURCE_TAG_PREFIX + "last_updated_timestamp") == str(source_model.last_updated_timestamp)
    source_version, version = src.get_model_version(reg.models["M2"], "1"), dst.get_model_version(reg.models["M2"], "1")
    assert version.tags.get(SOURCE_TAG_PREFIX + "creation_timestamp") == str(source_version.creation_timestamp), version.tags
    assert version.tags.get(SOURCE_TAG_PREFIX + "last_updated_timestamp") == str(source_version.last_updated_timestamp)

    everything = json.dumps([tags, run.data.tags, model.tags, version.tags]) + exported.stderr_text + imported.stderr_text
    assert secret not in everything and "archivist" not in everything
    assert secret.encode() not in archive.read_bytes()


def test_no_use_src_user_id(scratch_server, dest_server, unique_prefix, tmp_path):
    from mlflow.tracking.context.default_context import _get_user

    name = f"{unique_prefix}users"
    client = MlflowClient(tracking_uri=scratch_server.url)
    experiment_id = client.create_experiment(name)
    source_user = f"someone-else-{uuid.uuid4().hex[:6]}"
    run_id = client.create_run(experiment_id, tags={USER_TAG: source_user}).info.run_id
    client.set_terminated(run_id)
    assert client.get_run(run_id).info.user_id == source_user

    archive = tmp_path / "users.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name)
    assert column(archive, "runs", "user_id") == {source_user}
    # One import only: a second copy of the same source run on the shared destination would be a duplicate
    # for every comparison of it; the default (the source's user) is checked by every round trip.
    archive_cli.import_(archive, dest_server.url, "--no-use-src-user-id")

    (mine,) = dest_runs(dest_server.url, name)
    assert mine.info.user_id == _get_user() != source_user
    assert mine.data.tags.get(USER_TAG) != source_user


def test_workers_give_the_same_archive_as_one_worker(scratch_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}workers"
    build_small_experiment(scratch_server.url, name, n_runs=6)
    contents = {}
    for workers in ("1", "4"):
        archive = tmp_path / f"workers-{workers}.mlar"
        archive_cli.export(archive, scratch_server.url, "--experiments", name, "--workers", workers)
        tables, artifacts = archive_contents(archive)
        rows = {table: sorted(json.dumps(row, sort_keys=True, default=str) for row in found) for table, found in tables.items()}
        contents[workers] = (rows, sorted(artifacts))
    assert contents["4"][0].keys() == contents["1"][0].keys()
    for table in contents["1"][0]:
        assert contents["4"][0][table] == contents["1"][0][table], f"table {table} differs between --workers 4 and 1"
    assert contents["4"][1] == contents["1"][1]
    assert len(contents["1"][0]["runs"]) == 6


def test_progress_line_only_on_a_terminal(scratch_server, unique_prefix, tmp_path, monkeypatch):
    """Progress is drawn on stderr when it is a (pseudo-)terminal, unless --quiet; never into a pipe."""
    name = f"{unique_prefix}progress"
    build_small_experiment(scratch_server.url, name, n_runs=2)

    def stderr_of_export(label: str, quiet: bool, terminal: bool) -> bytes:
        reader, writer = pty.openpty() if terminal else os.pipe()
        with os.fdopen(writer, "w", closefd=True) as stderr:
            monkeypatch.setattr(sys, "stderr", stderr)
            assert stderr.isatty() == terminal
            export_archive(str(tmp_path / f"{label}.mlar"), tracking_uri=scratch_server.url, experiments=name, quiet=quiet)
            monkeypatch.undo()
        data = b""
        while True:
            try:
                chunk = os.read(reader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            data += chunk
        os.close(reader)
        return data

    clear_line = b"\x1b[K"
    drawn = stderr_of_export("terminal", quiet=False, terminal=True)
    assert clear_line in drawn and b"\rruns exported: 2 " in drawn, drawn
    assert stderr_of_export("quiet", quiet=True, terminal=True) == b""
    assert stderr_of_export("pipe", quiet=False, terminal=False) == b""


# -- the summary ----------------------------------------------------------------------------------


def test_summary_names_first_error_and_exit_is_non_zero(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}one run refused"
    build_small_experiment(scratch_server.url, name, n_runs=3)
    archive = tmp_path / "three.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name)
    refused = []

    def refuse_first_run(n, method, path):
        if path.endswith("/runs/create") and not refused:
            refused.append(path)
            return 400
        return None

    with FlakyProxy(dest_server.url, refuse_first_run) as proxy:
        result = archive_cli.import_(archive, proxy.url, check=False)
    assert refused, "no run was created through the proxy"
    assert result.returncode != 0, result.describe()
    lines = [line for line in result.stderr_text.splitlines() if line.startswith("runs: ")]
    assert len(lines) == 1 and lines[0].startswith("runs: 2 created, 0 already present, 1 failed (first error: "), result.describe()
    assert "400" in lines[0], lines[0]
    assert archive_cli.import_counts(result.stderr_text)["experiments"] == (1, 0, 0)


def test_import_into_the_exporting_server_creates_nothing(scratch_server, unique_prefix, tmp_path):
    """Over REST too, runs found under their own IDs are present, a deleted one stays as the server has it, and
    the experiment (same ID, name and creation time) gets no tag."""
    name = f"{unique_prefix}own server"
    small = build_small_experiment(scratch_server.url, name, n_runs=3)
    client = MlflowClient(scratch_server.url)
    client.delete_run(small.run_ids[0])
    archive = tmp_path / "own.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name, "--export-deleted-runs")
    client.restore_run(small.run_ids[0])  # restored since the export: the archive's deletion is not replayed

    counts = archive_cli.import_counts(archive_cli.import_(archive, scratch_server.url).stderr_text)
    assert counts["runs"] == (0, 3, 0) and counts["metric_points"][0] == 0
    runs = all_runs(client, [small.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(small.run_ids)
    assert all(r.info.lifecycle_stage == "active" for r in runs)
    assert not any(k.startswith("mlflow_archive.") for r in runs for k in r.data.tags)
    assert not any(k.startswith("mlflow_archive.") for k in client.get_experiment(small.experiment_id).tags)


# -- rewrites and exclusions ----------------------------------------------------------------------


def test_log_model_history_rewritten_and_archive_tags_not_copied(scratch_server, dest_server, unique_prefix, tmp_path):
    name = f"{unique_prefix}rewrites"
    client = MlflowClient(tracking_uri=scratch_server.url)
    experiment_id = client.create_experiment(name)
    run_id = client.create_run(experiment_id, run_name="with history").info.run_id
    other = "0123456789abcdef0123456789abcdef"  # a run of another server: left as it is
    history = [{"run_id": run_id, "artifact_path": "model", "flavors": {}}, {"run_id": other, "artifact_path": "older"}]
    client.set_tag(run_id, LOG_MODEL_HISTORY_TAG, json.dumps(history))
    client.set_tag(run_id, SOURCE_RUN_TAG, "an-earlier-source")  # left by an import into this server
    client.set_tag(run_id, ARCHIVE_TAG_PREFIX + "import_state", "complete")
    client.set_tag(run_id, ARCHIVE_TAG_PREFIX + "anything", "else")
    client.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)])
    client.set_terminated(run_id)

    archive = tmp_path / "rewrites.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name)
    archive_cli.import_(archive, dest_server.url)

    (run,) = dest_runs(dest_server.url, name)
    tags = run.data.tags
    assert tags[SOURCE_RUN_TAG] == run_id
    assert tags[ARCHIVE_TAG_PREFIX + "import_state"] == "complete"
    assert ARCHIVE_TAG_PREFIX + "anything" not in tags, tags
    rewritten = json.loads(tags[LOG_MODEL_HISTORY_TAG])
    assert [entry["run_id"] for entry in rewritten] == [run.info.run_id, other]
    assert [{k: v for k, v in e.items() if k != "run_id"} for e in rewritten] == [
        {k: v for k, v in e.items() if k != "run_id"} for e in history
    ]


# -- registry edge cases --------------------------------------------------------------------------


def test_versions_appended_to_existing_model_and_unrestorable_source_kept(scratch_server, dest_server, unique_prefix, tmp_path):
    src, dst = MlflowClient(tracking_uri=scratch_server.url), MlflowClient(tracking_uri=dest_server.url)
    name = f"{unique_prefix}existing model"
    experiment_id = src.create_experiment(name)
    run_id = src.create_run(experiment_id).info.run_id
    src.set_terminated(run_id)
    src.create_registered_model(name)
    src.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    elsewhere = "s3://a-bucket-of-another-system/models/frozen"
    src.create_model_version(name, elsewhere)
    src.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)

    dst.create_registered_model(name, description="made on the destination")
    own_experiment = dst.create_experiment(f"{unique_prefix}destination's own")
    own_run = dst.create_run(own_experiment).info.run_id
    dst.create_model_version(name, f"runs:/{own_run}/model", run_id=own_run)

    archive = tmp_path / "append.mlar"
    archive_cli.export(archive, scratch_server.url, "--models", name)
    result = archive_cli.import_(archive, dest_server.url)
    assert archive_cli.import_counts(result.stderr_text)["model_versions"] == (3, 0, 0), result.describe()
    notes = [line for line in result.stderr_text.splitlines() if line.startswith("note: ")]
    assert any(f"{name!r} existed already" in n and "next free numbers" in n for n in notes), notes
    assert any(f"version 2 of {name!r} keeps its source {elsewhere!r}" in n for n in notes), notes

    versions = model_versions(dst, name)
    assert sorted(versions) == [1, 2, 3, 4]
    assert versions[1].run_id == own_run and SOURCE_VERSION_TAG not in versions[1].tags
    assert [versions[n].tags.get(SOURCE_VERSION_TAG) for n in (2, 3, 4)] == ["1", "2", "3"]
    assert versions[3].source == elsewhere
    (imported_run,) = dest_runs(dest_server.url, name)
    assert versions[2].source == f"runs:/{imported_run.info.run_id}/model" == versions[4].source
    assert dst.get_registered_model(name).description == "made on the destination"


# -- reading without this package -----------------------------------------------------------------


def test_fresh_export_reads_with_tar_zstd_and_duckdb(scratch_server, unique_prefix, tmp_path):
    """README "Reading an archive without this package", on an archive that export has just written."""
    name = f"{unique_prefix}plain tools"
    made = build_small_experiment(scratch_server.url, name, n_runs=2)
    archive = tmp_path / "plain.mlar"
    archive_cli.export(archive, scratch_server.url, "--experiments", name)

    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    metrics = [m for m in listing if "run_metrics" in m and m.endswith(".parquet")]
    assert metrics, listing
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path), *metrics], check=True)
    header = subprocess.run(
        f"tar -xOf {archive} header.json.zst | zstd -d", shell=True, capture_output=True, check=True
    ).stdout
    assert json.loads(header)["source"]["tracking_uri"] == scratch_server.url
    query = (
        "import duckdb, sys; print(duckdb.sql(f\"SELECT key, count(*) FROM read_parquet({sys.argv[1:]!r}) GROUP BY key\")"
        ".fetchall())"
    )
    script = f"import sys; sys.modules['mlflow_archive'] = None\n{query}"
    counted = subprocess.run(
        [sys.executable, "-c", script, *metrics], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    assert counted.strip() == str([("x", 3 * len(made.run_ids))]), counted
    with tarfile.open(archive) as tar:
        assert {m.name for m in tar.getmembers()} == set(listing)

