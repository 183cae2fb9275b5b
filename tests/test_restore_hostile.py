"""`restore` of archives that verify but hold what a database cannot keep as it is: refused in one `Error:`
sentence before the first archive row is written, never a traceback. What the restore can take as data
(a header field of another type, an MLmodel that is not a text file) it writes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

import archive_cli
from mlflow_archive.archive import SECTIONS, ArchiveWriter
from samples import M1, MTIME, R1, SAMPLE_HEADER, complete

EXPERIMENT = {"experiment_id": "1", "name": "e", "lifecycle_stage": "active", "tags": []}
RUN = {"run_id": R1, "experiment_id": "1", "status": "FINISHED", "lifecycle_stage": "active"}
MODEL = {"model_id": M1, "experiment_id": "1", "name": "m", "status": "READY", "tags": [], "params": [],
         "creation_timestamp": 1700000001000, "last_updated_timestamp": 1700000001000,
         "artifact_location": "s3://source/models/" + M1}


def write_archive(path: Path, tables: dict[str, list[dict]], files: dict[str, dict[str, bytes]] = {},
                  header: dict = SAMPLE_HEADER) -> Path:
    """An archive of one chunk per section, written by the reference writer: sound hashes, any content.
    ``files``: section -> archive path -> bytes."""
    stream = io.BytesIO()
    writer = ArchiveWriter(stream, header, MTIME)
    for section, stems in SECTIONS.items():
        if not any(tables.get(t) for t in stems) and section not in files:
            continue
        chunk = writer.chunk(section)
        for table in stems:
            rows = [complete(table, r) for r in tables.get(table, [])]
            if rows:
                chunk.write_table(table, {name: [r[name] for r in rows] for name in rows[0]})
        with chunk.artifacts() as sink:
            for number, (archive_path, content) in enumerate(files.get(section, {}).items()):
                local = path.parent / f"{section}-{number}"  # a short local name, whatever the archive path
                local.write_bytes(content)
                sink.add(archive_path, local)
    writer.close()
    path.write_bytes(stream.getvalue())
    return path


def restore(archive: Path, root: Path):
    return archive_cli.run("restore", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                           "--artifacts-destination", root / "artifacts", "--quiet", check=False)


def archive_rows(root: Path) -> dict[str, int]:
    """Row counts of the tables an archive fills (MLflow's own Default experiment 0 left out); a refused restore into
    a new file creates no table at all."""
    with sa.create_engine(f"sqlite:///{root / 'mlflow.db'}").connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        return {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}{where}")).scalar() if table in tables else 0
                for table, where in (
            ("experiments", " WHERE experiment_id != 0"), ("runs", ""), ("logged_models", ""), ("registered_models", ""),
            ("evaluation_datasets", ""))}


NOTHING = {"experiments": 0, "runs": 0, "logged_models": 0, "registered_models": 0, "evaluation_datasets": 0}

REFUSED = {
    "experiment_id_not_a_number": ({"experiments": [{**EXPERIMENT, "experiment_id": "abc"}]}, "'abc', which is not a whole number"),
    "experiment_id_beyond_int64": ({"experiments": [EXPERIMENT], "runs": [{**RUN, "experiment_id": str(2**63)}]},
                                   "which is not a whole number"),
    "prompt_template_not_json": ({"experiments": [EXPERIMENT], "prompts": [{"name": "p", "tags": [], "aliases": []}],
                                  "prompt_versions": [{"name": "p", "version": 1, "template_json": "{bad", "tags": []}]},
                                 "not JSON in its template_json"),
    "dataset_record_not_json": ({"experiments": [EXPERIMENT],
                                 "evaluation_datasets": [{"dataset_id": "d-1", "name": "d", "experiment_ids": ["1"], "tags": []}],
                                 "evaluation_dataset_records": [{"dataset_id": "d-1", "record_id": "r-1",
                                                                 "inputs_json": "{bad", "tags": []}]},
                                "not JSON in its inputs_json"),
    "logged_model_without_creation_time": ({"experiments": [EXPERIMENT], "logged_models": [{**MODEL, "creation_timestamp": None}]},
                                           "has no creation_timestamp_ms, which the database requires"),
    "logged_model_status_unknown": ({"experiments": [EXPERIMENT], "logged_models": [{**MODEL, "status": "BROKEN"}]},
                                    "the status 'BROKEN', which MLflow does not know"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_before_the_first_write(case, tmp_path):
    tables, phrase = REFUSED[case]
    archive = write_archive(tmp_path / "hostile.mlar", {"runs": [RUN], **tables})
    assert phrase in restore(archive, tmp_path).error_line()
    assert archive_rows(tmp_path) == NOTHING


def test_dataset_links_to_experiments_no_database_keeps_are_dropped(tmp_path):
    """A link names an experiment the restore may not hold: one that no database can keep is a lost link, as
    one that is not in the archive is, and the dataset is restored."""
    dataset = {"dataset_id": "d-1", "name": "d", "experiment_ids": ["1", "abc", None], "tags": []}
    archive = write_archive(tmp_path / "a.mlar", {"experiments": [EXPERIMENT], "runs": [RUN], "evaluation_datasets": [dataset]})
    result = restore(archive, tmp_path)
    assert result.returncode == 0, result.describe()
    assert "lost links to experiments" in result.stderr_text
    with sa.create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}").connect() as conn:
        links = list(conn.execute(sa.text("SELECT destination_id FROM entity_associations")).scalars())
    assert links == ["1"]


def test_export_header_field_of_another_type_is_ignored(tmp_path):
    archive = write_archive(tmp_path / "a.mlar", {"experiments": [EXPERIMENT], "runs": [{**RUN, "lifecycle_stage": "deleted"}]},
                            header={**SAMPLE_HEADER, "export": "yesterday"})
    result = restore(archive, tmp_path)
    assert result.returncode == 0, result.describe()
    assert archive_rows(tmp_path) == {**NOTHING, "experiments": 1, "runs": 1}


def test_mlmodel_folder_and_binary_mlmodel_are_written_as_they_are(tmp_path):
    """Only an MLmodel text file gets the destination's location; a folder or binary file of that name is data."""
    files = {"logged_models": {f"{M1}/MLmodel/inner.txt": b"x", f"{M1}/binary/MLmodel": b"\xff\xfe artifact_path: s3"}}
    archive = write_archive(tmp_path / "a.mlar", {"experiments": [EXPERIMENT], "runs": [RUN], "logged_models": [MODEL]}, files)
    result = restore(archive, tmp_path)
    assert result.returncode == 0, result.describe()
    assert archive_rows(tmp_path)["logged_models"] == 1
    model_files = tmp_path / "artifacts" / "1" / "models" / M1 / "artifacts"
    assert (model_files / "MLmodel" / "inner.txt").read_bytes() == b"x"
    assert (model_files / "binary" / "MLmodel").read_bytes() == b"\xff\xfe artifact_path: s3"


def test_import_into_a_database_whose_driver_is_missing(tmp_path):
    archive = write_archive(tmp_path / "a.mlar", {"experiments": [EXPERIMENT], "runs": [RUN]})
    error = archive_cli.import_(archive, "mysql://user:secret@127.0.0.1:1/mlflow", check=False).error_line()
    assert "needs the module 'MySQLdb', which is not installed" in error and "secret" not in error


def test_artifact_path_longer_than_the_file_system_allows(tmp_path):
    """Each component within the format's 255 bytes, the whole path beyond Linux's 4096: no rerun can write it."""
    deep = "/".join(["d" * 250] * 17)
    archive = write_archive(tmp_path / "a.mlar", {"experiments": [EXPERIMENT], "runs": [RUN]}, {"runs": {f"{R1}/{deep}/f": b"x"}})
    errors = [restore(archive, tmp_path).error_line() for _ in range(2)]
    assert errors[0] == errors[1] and "longer than this file system allows" in errors[0]
    assert "fails the same way" in errors[0]
    assert archive_rows(tmp_path)["runs"] == 0


def test_a_param_and_a_tag_of_one_key_are_not_a_repeated_row(tmp_path):
    """Identities are per table: a run's param ``i`` and its tag ``i`` are two rows of two tables."""
    archive = write_archive(tmp_path / "a.mlar", {
        "experiments": [EXPERIMENT], "runs": [RUN],
        "run_params": [{"run_id": R1, "key": "i", "value": "1"}], "run_tags": [{"run_id": R1, "key": "i", "value": "1"}],
    })
    assert archive_cli.run("verify", archive, check=False).returncode == 0
    result = restore(archive, tmp_path)
    assert result.returncode == 0, result.describe()
    assert archive_rows(tmp_path)["runs"] == 1
