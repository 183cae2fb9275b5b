"""A destination server that goes away in the middle of an import.

The user must see one sentence, and running the same command again, once the
server is back, must finish the job without duplicating anything.
"""

import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import ViewType

from mlflow_archive import export_archive, log_demo_runs
from servers import start_server

CLI = str(Path(sys.executable).parent / "mlflow-archive")
SOURCE_TAG = "mlflow_archive.source_run_id"
STATE_TAG = "mlflow_archive.import_state"


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(experiment_ids, run_view_type=ViewType.ALL, max_results=1000)


def test_server_lost_mid_import_then_same_command_finishes(tmp_path):
    source = f"sqlite:///{tmp_path}/source.db"
    log_demo_runs(source, runs=30, steps=200)
    archive = tmp_path / "backup.mlar"
    export_archive(str(archive), tracking_uri=source)
    source_ids = {r.info.run_id for r in _runs(source)}

    server = start_server(tmp_path / "dest")
    importing = subprocess.Popen(
        [CLI, "import", "-i", str(archive), "--tracking-uri", server.url, "--quiet", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and importing.poll() is None:
        if len(_runs(server.url)) >= 5:
            break
        time.sleep(0.2)
    assert importing.poll() is None, f"import ended before the server could be stopped: {importing.stderr.read()}"
    server.stop()
    _, stderr = importing.communicate(timeout=120)
    assert importing.returncode == 1
    assert stderr.startswith("Error: The tracking server at http://127.0.0.1:"), stderr
    assert "not answering" in stderr and "run the same command again" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr

    server = start_server(tmp_path / "dest")  # same database and artifacts, new port
    try:
        again = subprocess.run(
            [CLI, "import", "-i", str(archive), "--tracking-uri", server.url, "--quiet"], capture_output=True, text=True
        )
        assert again.returncode == 0, again.stderr
        complete = {}
        for run in _runs(server.url):
            tags = run.data.tags
            if tags.get(STATE_TAG) == "complete" and run.info.lifecycle_stage == "active":
                assert tags[SOURCE_TAG] not in complete, f"run {tags[SOURCE_TAG]} imported twice"
                complete[tags[SOURCE_TAG]] = run
            elif run.info.lifecycle_stage == "active":
                raise AssertionError(f"active run {run.info.run_id} left in state {tags.get(STATE_TAG)!r}")
        assert set(complete) == source_ids
        client = MlflowClient(server.url)
        for run in complete.values():
            history = client.get_metric_history(run.info.run_id, "loss")
            assert len(history) == 200, f"run {run.info.run_id} has {len(history)} loss points, not 200"
    finally:
        server.stop()
