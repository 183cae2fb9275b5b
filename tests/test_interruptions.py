"""A destination server that goes away in the middle of an import.

The user must see one sentence, and running the same command again, once the
server is back, must finish the job without duplicating anything.
"""

import itertools
import subprocess
import threading

from mlflow import MlflowClient

import archive_cli
from compare import server_runs
from flaky_proxy import FlakyProxy
from mlflow_archive import export_archive, log_demo_runs
from servers import start_server
from tags import IMPORT_STATE_TAG, SOURCE_RUN_TAG

# The import is stopped while this log_batch call is held: its run's complete marker (on the run's last call)
# cannot have been written, so at least that run is left partial, however far the other runs got.
HELD_BATCH = 5


def test_server_lost_mid_import_then_same_command_finishes(tmp_path):
    source = f"sqlite:///{tmp_path}/source.db"
    log_demo_runs(source, runs=30, steps=200)
    archive = tmp_path / "backup.mlar"
    export_archive(str(archive), tracking_uri=source)
    source_ids = {r.info.run_id for r in server_runs(source)}

    calls = itertools.count(1)
    held, release, gone = threading.Event(), threading.Event(), threading.Event()

    def hold_a_batch(n, method, path):
        """The HELD_BATCH-th log_batch call waits until the server is stopped; nothing gets through after it."""
        if gone.is_set():
            return "drop"
        if path.endswith("/runs/log-batch") and next(calls) == HELD_BATCH:
            held.set()
            release.wait(120)
            return "drop"
        return None

    server = start_server(tmp_path / "dest")
    importing = None
    try:
        with FlakyProxy(server.url, hold_a_batch) as proxy:
            importing = subprocess.Popen(
                [archive_cli.MLFLOW, "archive", "import", "-i", str(archive), "--tracking-uri", proxy.url, "--quiet", "--workers", "2"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=archive_cli.SCRATCH_CWD,
            )
            reached = held.wait(120)
            server.stop()
            gone.set()
            proxy.vanish()
            release.set()
            assert reached, f"the import never made log_batch call {HELD_BATCH}: {importing.communicate(timeout=60)[1]}"
            _, stderr = importing.communicate(timeout=120)
        assert importing.returncode == 1, stderr
        assert stderr.startswith(f"Error: The tracking server at {proxy.url}"), stderr
        assert "not answering" in stderr and "run the same command again" in stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr

        server = start_server(tmp_path / "dest")  # same database and artifacts, new port
        left = [r for r in server_runs(server.url) if r.data.tags.get(IMPORT_STATE_TAG) == "partial"]
        assert left, "the interrupted import left no partial run: the resume path would not be exercised"
        again = archive_cli.import_(archive, server.url)
        assert f"{len(left)} run(s) left partial by an interrupted import were deleted" in again.stderr_text, again.describe()
        complete = {}
        for run in server_runs(server.url):
            tags = run.data.tags
            if tags.get(IMPORT_STATE_TAG) == "complete" and run.info.lifecycle_stage == "active":
                assert tags[SOURCE_RUN_TAG] not in complete, f"run {tags[SOURCE_RUN_TAG]} imported twice"
                complete[tags[SOURCE_RUN_TAG]] = run
            elif run.info.lifecycle_stage == "active":
                raise AssertionError(f"active run {run.info.run_id} left in state {tags.get(IMPORT_STATE_TAG)!r}")
        assert set(complete) == source_ids
        client = MlflowClient(server.url)
        for run in complete.values():
            history = client.get_metric_history(run.info.run_id, "loss")
            assert len(history) == 200, f"run {run.info.run_id} has {len(history)} loss points, not 200"
    finally:
        release.set()
        if importing is not None and importing.poll() is None:
            importing.kill()
            importing.communicate()
        server.stop()
