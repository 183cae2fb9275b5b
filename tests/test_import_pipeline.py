"""An import whose runs span several chunks: each chunk's writes are still running while the next one is read.

Chunks of 4 runs (``runs.PER_CHUNK`` made small for the export) between two local SQLite stores: parents in
other chunks than their children, histories over one ``log_batch`` call, a deleted run. The destination is
compared with the source field by field, and a second import creates nothing.
"""

from __future__ import annotations

import tarfile

from compare import compare_servers
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from tags import SOURCE_RUN_TAG
from test_tracking_roundtrip import api_export, api_import, summary_counts

from mlflow_archive import log_demo_runs
from mlflow_archive.objects import runs as runs_module

RUNS_PER_CHUNK = 4


def test_runs_across_chunks(tmp_path, monkeypatch):
    source = f"sqlite:///{tmp_path}/source.db"
    experiment_id = log_demo_runs(source, runs=10, steps=1200)  # 1,200 points and 2 params: 2 log_batch calls a run
    client = MlflowClient(tracking_uri=source)
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])
    for child, parent in ((runs[1], runs[0]), (runs[2], runs[9]), (runs[8], runs[3])):
        client.set_tag(child.info.run_id, MLFLOW_PARENT_RUN_ID, parent.info.run_id)
    client.delete_run(runs[5].info.run_id)

    archive = tmp_path / "chunks.mlar"
    monkeypatch.setattr(runs_module, "PER_CHUNK", RUNS_PER_CHUNK)
    api_export(archive, source, export_deleted_runs=True)
    with tarfile.open(archive) as tar:
        chunks = {m.name.split("/")[1] for m in tar.getmembers() if m.name.startswith("runs/")}
    assert len(chunks) == -(-len(runs) // RUNS_PER_CHUNK)
    dest = f"sqlite:///{tmp_path}/dest.db"
    first = api_import(archive, dest, workers=3, artifacts_destination=str(tmp_path / "dest-artifacts"))
    assert summary_counts(first, "runs") == (len(runs), 0, 0)
    compare_servers(source, dest, exact=True)
    # Restored by the user since (or an import stopped between marking it complete and deleting it): left active.
    restored = _dest_run(dest, runs[5].info.run_id)
    MlflowClient(tracking_uri=dest).restore_run(restored)
    again = api_import(archive, dest, workers=3, artifacts_destination=str(tmp_path / "dest-artifacts"))
    assert summary_counts(again, "runs") == (0, len(runs), 0)
    assert [line for line in again.lines() if restored in line], again.lines()
    assert MlflowClient(tracking_uri=dest).get_run(restored).info.lifecycle_stage == "active"


def _dest_run(dest: str, source_run_id: str) -> str:
    found = MlflowClient(tracking_uri=dest).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=dest).search_experiments()],
        f"tags.`{SOURCE_RUN_TAG}` = '{source_run_id}'", run_view_type=3,
    )
    assert len(found) == 1
    return found[0].info.run_id
