"""Archives whose hashes are sound but whose content no destination can take (FORMAT.md 6.4, 12.2): `verify`
refuses them, so `import` and `restore` stop in one `Error:` sentence before writing anything, and a
run without the check never asks for a rerun that would fail the same way.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import archive_cli
from corpus import CORPUS

# Conformance cases of content an import or restore cannot write, with a phrase of their refusal.
UNIMPORTABLE = {
    "object_in_two_chunks": "two runs rows with run_id",
    "object_twice_in_member": "two runs rows with run_id",
    "param_key_twice": "two run_params rows with run_id",
    "artifact_component_too_long": "longer than 255 bytes",
    "artifact_file_and_folder": "both as a file and as a folder",
}


def restore(archive, root, *options):
    return archive_cli.run("restore", "-i", archive, "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
                           "--artifacts-destination", root / "artifacts", "--quiet", *options, check=False)


def runs(db) -> list[tuple]:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT run_uuid, lifecycle_stage, status FROM runs"))]


@pytest.mark.parametrize("case", sorted(UNIMPORTABLE))
def test_verify_import_and_restore_refuse_before_writing(case, tmp_path):
    archive = CORPUS / f"{case}.mlar"
    assert UNIMPORTABLE[case] in archive_cli.run("verify", archive, check=False).error_line()
    assert UNIMPORTABLE[case] in archive_cli.import_(archive, f"sqlite:///{tmp_path / 'import.db'}", check=False).error_line()
    assert not (tmp_path / "import.db").exists()
    assert UNIMPORTABLE[case] in restore(archive, tmp_path).error_line()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "artifacts").exists()


def test_unchecked_import_of_a_run_in_two_chunks_keeps_the_first_and_asks_no_rerun(tmp_path):
    """Without verify the first copy is written before the second is read: the refusal must not suggest a
    rerun, and a rerun (which meets the same second copy) leaves the first copy as it was."""
    archive, db = CORPUS / "object_in_two_chunks.mlar", tmp_path / "import.db"
    errors, states = [], []
    for _ in range(2):
        errors.append(archive_cli.import_(archive, f"sqlite:///{db}", "--no-verify", check=False).error_line())
        states.append(runs(db))
    assert errors[0] == errors[1] and "two runs rows" in errors[0] and "again" not in errors[0]
    assert len(states[0]) == 1 and states[0][0][1] == "active"
    assert states[1] == states[0], "the rerun replaced the run the first import wrote"


@pytest.mark.parametrize("case", ["object_in_two_chunks", "param_key_twice"])
def test_unchecked_restore_writes_no_row(case, tmp_path):
    """restore reads the rows the reader checks against each other before its first write, so even without
    verify nothing is written."""
    assert UNIMPORTABLE[case] in restore(CORPUS / f"{case}.mlar", tmp_path, "--no-verify").error_line()
    with sa.create_engine(f"sqlite:///{tmp_path / 'mlflow.db'}").connect() as conn:
        assert sa.inspect(conn).get_table_names() == []  # refused before MLflow's schema was even made


def test_unchecked_import_refused_mid_chunk_says_a_rerun_fails_the_same_way(tmp_path):
    """The clash is in the chunk's artifacts, after its runs were started: they stay partial, and the message
    does not promise that a rerun (or a good copy, which would hold the same clash) finishes them."""
    result = archive_cli.import_(CORPUS / "artifact_file_and_folder.mlar", f"sqlite:///{tmp_path / 'import.db'}",
                                 "--no-verify", check=False)
    error = result.error_line()
    assert "both as a file and as a folder" in error and "left partial" in error
    assert "fails the same way" in error and "good copy" not in error
