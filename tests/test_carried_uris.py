"""URIs an archive carries into a database: whatever a crafted archive names as a model version's source, or as an
experiment's, run's or logged model's location, a server started on the restored (or imported) database serves no
file outside its artifacts folder."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import sqlalchemy as sa
from mlflow.tracing.constant import SpansLocation, TraceTagKey
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from archive_cli import import_counts
from archive_cli import run as run_cli
from samples import KV, complete
from servers import start_server

from mlflow_archive.archive import SECTIONS, ArchiveWriter
from mlflow_archive.objects.registry import PLACEHOLDER_SOURCE

RUN, MODEL, TRACE = "5" * 32, "m-" + "6" * 32, "tr-" + "7" * 32
OUTSIDE = Path("/etc/hostname")  # a file of the machine, outside every artifacts folder
RUN_URI = "file:///etc/run"  # the run's artifact URI on the (crafted) source
CLIMB = "/.." * 40 + str(OUTSIDE.parent)  # climbs to / from any folder, then down to /etc


def hostile_archive(path: Path, sources: list[str]) -> Path:
    """An experiment at ``file:///``, a run at ``RUN_URI`` with a file, a logged model at ``file:///etc/model``, one
    version of the registered model ``leak`` per source, made from the run, and a trace whose artifacts and archived
    spans are at ``file:///etc``."""
    tables = {
        "experiments": [{"experiment_id": "1", "name": "hostile", "artifact_location": "file:///",
                         "lifecycle_stage": "active", "creation_time": 1, "last_update_time": 1, "tags": []}],
        "runs": [{"run_id": RUN, "experiment_id": "1", "run_name": "r", "user_id": "u", "status": "FINISHED",
                  "start_time": 1, "end_time": 2, "lifecycle_stage": "active", "artifact_uri": RUN_URI}],
        "logged_models": [{"model_id": MODEL, "experiment_id": "1", "name": "m", "artifact_location": "file:///etc/model",
                           "creation_timestamp": 1, "last_updated_timestamp": 1, "status": "READY", "tags": [],
                           "params": []}],
        "registered_models": [{"name": "leak", "creation_timestamp": 1, "last_updated_timestamp": 1, "tags": [],
                               "aliases": []}],
        "model_versions": [{"name": "leak", "version": i, "creation_timestamp": 1, "last_updated_timestamp": 1,
                            "source": source, "run_id": RUN, "current_stage": "None", "status": "READY",
                            "tags": KV(("k", "v"))} for i, source in enumerate(sources, 1)],
        "traces": [{"trace_id": TRACE, "experiment_id": "1", "request_time": 1, "state": "OK", "trace_metadata": [],
                    "tags": KV((MLFLOW_ARTIFACT_LOCATION, "file:///etc"), (TraceTagKey.ARCHIVE_LOCATION, "file:///etc"),
                               (TraceTagKey.SPANS_LOCATION, SpansLocation.ARCHIVE_REPO.value))}],
    }
    with open(path, "wb") as out:
        writer = ArchiveWriter(out, {"source": {"tracking_uri": "test"}}, 0)
        for section, stems in SECTIONS.items():
            if not any(stem in tables for stem in stems):
                continue
            chunk = writer.chunk(section)
            for stem in (s for s in stems if s in tables):
                rows = [complete(stem, r) for r in tables[stem]]
                chunk.write_table(stem, {column: [r[column] for r in rows] for column in rows[0]})
            if section == "runs":
                with chunk.artifacts() as sink:
                    (path.parent / "kept.txt").write_text("kept")
                    sink.add(f"{RUN}/kept.txt", path.parent / "kept.txt")
        writer.close()
    return path


def served(server, route: str, **query) -> bytes:
    """The body the server answers on ``route`` (an error's body too)."""
    try:
        with urllib.request.urlopen(f"{server.url}/{route}?{urllib.parse.urlencode(query)}", timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def assert_serves_nothing_outside(root: Path, versions: int) -> None:
    """Neither the model-version nor the run artifact route of a server on ``root`` answers with a file outside it."""
    server = start_server(root)
    try:
        leaked = OUTSIDE.read_bytes()
        for version in range(1, versions + 1):
            body = served(server, "model-versions/get-artifact", name="leak", version=version, path=OUTSIDE.name)
            assert leaked not in body, f"version {version} served {OUTSIDE}"
        run_id = only_run(root)
        assert served(server, "get-artifact", run_id=run_id, path="kept.txt") == b"kept"
        assert leaked not in served(server, "get-artifact", run_id=run_id, path=OUTSIDE.name)
    finally:
        server.stop()


def stored(root: Path, query: str) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{root / 'mlflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def stored_sources(root: Path) -> list[tuple]:
    return stored(root, "SELECT version, source, storage_location FROM model_versions ORDER BY version")


def only_run(root: Path) -> str:
    [(run_id,)] = stored(root, "SELECT run_uuid FROM runs")
    return run_id


def restore(archive: Path, root: Path, check: bool = True):
    return run_cli("restore", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--artifacts-destination", root / "artifacts", check=check)


def test_restore_repoints_sources_outside_the_artifacts(tmp_path):
    """A local source (``file:///etc``, ``/etc``) names no file the restore wrote: the version points at the folder of
    its carried files instead, and the summary says so; a source in the run's files points at the restored run."""
    archive = hostile_archive(tmp_path / "hostile.mlar", ["file:///etc", str(OUTSIDE.parent), f"{RUN_URI}/model"])
    root = tmp_path / "restored"
    proc = restore(archive, root)
    assert_serves_nothing_outside(root, versions=3)
    assert proc.stderr_text.count("is outside what the destination serves") == 2, proc.describe()
    carried = "mlflow-artifacts:/model-versions/" + hashlib.sha256(b"leak").hexdigest()[:32]
    assert stored_sources(root) == [
        (1, f"{carried}/1", f"{carried}/1"),
        (2, f"{carried}/2", f"{carried}/2"),
        (3, f"mlflow-artifacts:/1/{RUN}/artifacts/model", f"mlflow-artifacts:/1/{RUN}/artifacts/model"),
    ]
    # Experiment, run, logged model and trace: where the restore writes their files, whatever the archive says.
    assert stored(root, "SELECT artifact_location FROM experiments WHERE experiment_id = 1") == [("mlflow-artifacts:/1",)]
    assert stored(root, "SELECT artifact_uri FROM runs") == [(f"mlflow-artifacts:/1/{RUN}/artifacts",)]
    assert stored(root, "SELECT artifact_location FROM logged_models") == [(f"mlflow-artifacts:/1/models/{MODEL}/artifacts",)]
    trace_locations = stored(root, f"SELECT key, value FROM trace_tags WHERE key IN ('{MLFLOW_ARTIFACT_LOCATION}', "
                                   f"'{TraceTagKey.ARCHIVE_LOCATION}', '{TraceTagKey.SPANS_LOCATION}') ORDER BY key")
    assert trace_locations == [(MLFLOW_ARTIFACT_LOCATION, f"mlflow-artifacts:/1/traces/{TRACE}/artifacts"),
                               (TraceTagKey.SPANS_LOCATION, SpansLocation.TRACKING_STORE.value)]


def test_restore_repoints_sources_that_climb_out(tmp_path):
    """A source whose path climbs out of its folder (``..``, plain or percent-encoded, also once re-pointed into the
    restored run's files) is refused by MLflow's server: it points at the folder of the version's carried files."""
    climbing = [f"mlflow-artifacts:/1/{RUN}/artifacts{CLIMB}", f"runs:/{RUN}{CLIMB.replace('/', '%2F')}", RUN_URI + CLIMB]
    archive = hostile_archive(tmp_path / "climbing.mlar", [f"runs:/{RUN}/model", *climbing])
    root = tmp_path / "restored"
    proc = restore(archive, root)
    assert_serves_nothing_outside(root, versions=4)
    carried = "mlflow-artifacts:/model-versions/" + hashlib.sha256(b"leak").hexdigest()[:32]
    assert stored_sources(root) == [(1, f"runs:/{RUN}/model", f"runs:/{RUN}/model")] + [
        (version, f"{carried}/{version}", f"{carried}/{version}") for version in (2, 3, 4)
    ]
    for version, source in enumerate(climbing, 2):
        assert f"version {version} of 'leak': its source {source!r} is outside" in proc.stderr_text, proc.describe()


def test_import_into_a_database_refuses_sources_outside_the_artifacts(tmp_path):
    """``import`` into a database URI writes through MLflow's store, which checks no source: the import applies the
    server's rules itself, so a version whose source is outside its run's files fails as it would over REST."""
    archive = hostile_archive(tmp_path / "hostile.mlar", ["file:///etc", RUN_URI + CLIMB, f"{RUN_URI}/model"])
    root = tmp_path / "imported"
    proc = run_cli("import", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--artifacts-destination", root / "artifacts", check=False)
    assert_serves_nothing_outside(root, versions=3)
    assert import_counts(proc.stderr_text)["model_versions"] == (1, 0, 2), proc.describe()
    assert "version 1 of 'leak': its source 'file:///etc' is outside" in proc.stderr_text, proc.describe()
    # Versions 1 and 2 are the placeholders that keep the numbers, deleted.
    placeholders = [(v, location) for v, _, location in stored_sources(root)[:2]]
    assert placeholders == [(1, PLACEHOLDER_SOURCE), (2, PLACEHOLDER_SOURCE)]
    version_3 = stored_sources(root)[2]
    assert version_3[1] == version_3[2] == str(root / "artifacts" / "1" / only_run(root) / "artifacts" / "model")
