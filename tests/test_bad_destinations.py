"""What a new user meets first: a missing or damaged archive, a dead port, a server that is not
MLflow, a file store. Each ends in one sentence, and nothing is written anywhere.
"""

from __future__ import annotations

import http.server
import threading

import pytest

import archive_cli
from servers import free_port


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory):
    return archive_cli.demo_archive(tmp_path_factory.mktemp("demo"))


def test_missing_archive_creates_no_destination(tmp_path):
    dest = tmp_path / "dst.db"
    error = archive_cli.import_(tmp_path / "missing.mlar", f"sqlite:///{dest}", check=False).error_line()
    assert "missing.mlar" in error and "No such file" in error
    assert not dest.exists(), "the destination store was created for an archive that does not exist"


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_damaged_file_leaves_destination_untouched(demo_archive, tmp_path, keep):
    data = demo_archive.read_bytes()
    damaged = tmp_path / "damaged.mlar"
    damaged.write_bytes(data[: int(len(data) * keep)])
    dest = tmp_path / "dst.db"
    archive_cli.import_(damaged, f"sqlite:///{dest}", check=False).error_line()
    assert not dest.exists(), "a damaged archive reached the destination"


@pytest.mark.timeout(90)  # MLflow's own retry ladder takes minutes on a dead port
def test_dead_port_is_reported_at_once(demo_archive):
    url = f"http://127.0.0.1:{free_port()}"
    # MLflow's default retries, not the suite's MLFLOW_HTTP_REQUEST_MAX_RETRIES=0
    result = archive_cli.run(
        "import", "-i", demo_archive, "--tracking-uri", url, "--quiet", check=False,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": None, "MLFLOW_HTTP_REQUEST_TIMEOUT": None},
    )
    assert "is not answering" in result.error_line()


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!DOCTYPE HTML><html><body>hello</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_web_server_that_is_not_mlflow(demo_archive):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        error = archive_cli.import_(demo_archive, url, check=False).error_line()
        assert "is not an MLflow tracking server (HTTP 200 on the experiments API)" in error, error
        error = archive_cli.export(demo_archive.parent / "x.mlar", url, check=False).error_line()
        assert "is not an MLflow tracking server" in error, error
    finally:
        server.shutdown()
        server.server_close()


def test_file_store_destination_names_the_setting(demo_archive, tmp_path):
    result = archive_cli.run(
        "import", "-i", demo_archive, "--tracking-uri", str(tmp_path / "mlruns"), "--quiet", check=False,
        env={"MLFLOW_ALLOW_FILE_STORE": None},
    )
    assert "MLFLOW_ALLOW_FILE_STORE=true" in result.error_line()
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("kind", ["prompts", "traces", "evaluation-datasets"])
def test_a_kind_both_named_and_left_out_is_refused(tmp_path, kind):
    result = archive_cli.export(
        tmp_path / "x.mlar", f"sqlite:///{tmp_path / 'mlflow.db'}", f"--{kind}", "all", f"--no-{kind}", check=False
    )
    assert f"--{kind} and --no-{kind} exclude each other" in result.error_line()
    assert not (tmp_path / "x.mlar").exists()


def test_database_of_another_mlflow_is_not_upgraded_by_an_import(demo_archive, tmp_path):
    """MLflow's store upgrades a database of an older MLflow in place when it opens it, and that MLflow's server
    then cannot use it: the import refuses it, leaving the file as it was; a newer MLflow's schema is refused too."""
    import hashlib
    import sqlite3

    from restore_data import MID_HISTORY, database_at_revision

    older = tmp_path / "older.db"
    database_at_revision(f"sqlite:///{older}", MID_HISTORY)
    digest = hashlib.sha256(older.read_bytes()).hexdigest()
    error = archive_cli.import_(demo_archive, f"sqlite:///{older}", check=False).error_line()
    assert f"has the schema of an older MLflow (revision {MID_HISTORY})" in error and "mlflow db upgrade" in error
    assert hashlib.sha256(older.read_bytes()).hexdigest() == digest
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    error = archive_cli.import_(demo_archive, f"sqlite:///{older}", check=False).error_line()
    assert "has schema revision ffffffffffff, which MLflow" in error and "to import into it" in error
