"""What the CLI prints: no password given in a URI (in our messages, MLflow's, SQLAlchemy's or a driver's, and
in log lines), and no control character from an archive (its strings are shown escaped).

No server is needed: the URIs name closed ports or drivers that are not installed, and the archives are built
by hand (tests/samples.py).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest

import archive_cli
from samples import RawArchive
from servers import free_port

SECRET = "SECRETPW"


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory):
    return archive_cli.demo_archive(tmp_path_factory.mktemp("demo"))


@contextmanager
def log_records():
    """Every log record of the block, MLflow's included (its loggers do not propagate to the root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    loggers = [logging.getLogger(), logging.getLogger("mlflow"), logging.getLogger("sqlalchemy.engine")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _closed_port_http() -> str:
    return f"http://admin:{SECRET}@127.0.0.1:{free_port()}"


def _closed_port_postgresql() -> str:
    return f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:{free_port()}/db"


MYSQL = f"mysql://u:{SECRET}@127.0.0.1/db"  # MySQLdb is not installed
POSTGRESQL_PSYCOPG = f"postgresql://u:{SECRET}@127.0.0.1/db"  # SQLAlchemy's default driver, psycopg 3, is not installed
MSSQL = f"mssql://u:{SECRET}@127.0.0.1/db"  # pyodbc is not installed


@pytest.mark.parametrize(
    "command, uri",
    [
        ("export", _closed_port_http()),
        ("import", _closed_port_http()),
        ("export", MYSQL),
        ("import", MYSQL),
        ("restore", MYSQL),
        ("export", _closed_port_postgresql()),
        ("restore", _closed_port_postgresql()),
        ("restore", f"postgresql+psycopg2://u@127.0.0.1:{free_port()}/db?password={SECRET}"),
        ("import", POSTGRESQL_PSYCOPG),
        ("restore", POSTGRESQL_PSYCOPG),
        ("import", MSSQL),
        ("restore", MSSQL),
    ],
    ids=["export-http", "import-http", "export-mysql", "import-mysql", "restore-mysql", "export-postgresql-refused",
         "restore-postgresql-refused", "restore-postgresql-password-parameter", "import-postgresql-no-driver",
         "restore-postgresql-no-driver", "import-mssql", "restore-mssql"],
)
def test_password_in_the_tracking_uri_is_never_printed(command, uri, demo_archive, tmp_path):
    args = {
        "export": ["export", "-o", tmp_path / "out.mlar"],
        "import": ["import", "-i", demo_archive],
        "restore": ["restore", "-i", demo_archive, "--artifacts-destination", tmp_path / "artifacts"],
    }[command]
    with log_records() as records:
        result = archive_cli.run(*args, "--tracking-uri", uri, "--quiet", check=False)
    printed = result.stdout_text + result.stderr_text + "\n".join(r.getMessage() + (r.exc_text or "") for r in records)
    assert SECRET not in printed, result.describe()
    assert result.one_line_error() is None, result.one_line_error()


def test_log_lines_of_libraries_are_redacted(demo_archive):
    """After the CLI started, a library's log line naming a URI with a password, or a signed URL, is masked."""
    archive_cli.run("verify", demo_archive)
    with log_records() as records:
        logging.getLogger("urllib3.connectionpool").warning("Retrying %s", f"https://u:{SECRET}@host/db")
        logging.getLogger("mlflow.store").warning("GET https://bucket/key?X-Amz-Signature=%s&part=1", SECRET)
        try:
            raise ConnectionError(f"cannot reach mysql://u:{SECRET}@host/db")
        except ConnectionError:
            logging.getLogger("sqlalchemy.pool").exception("connection failed")
    assert [r.getMessage() for r in records] == [
        "Retrying https://host/db", "GET https://bucket/key?X-Amz-Signature=***&part=1", "connection failed"
    ]
    assert "cannot reach mysql://host/db" in records[-1].exc_text and SECRET not in records[-1].exc_text


STEERING = "\x1b[2J\x1b]0;pwned\x07line\nforged: line\r\u202e"
ESCAPED = "\\x1b[2J\\x1b]0;pwned\\x07line\\nforged: line\\r\\u202e"


def test_archive_strings_are_printed_with_control_characters_escaped(tmp_path):
    archive = tmp_path / "steering.mlar"
    archive.write_bytes(RawArchive({
        "writer_version": f"2{STEERING}",
        "writer": {"name": STEERING, "version": "1"},
        "source": {"tracking_uri": STEERING, "mlflow_version": STEERING, "object_kinds": [STEERING]},
        "export": {"started_at": STEERING},
    }).finish(counts={STEERING: 1}))

    inspected = archive_cli.run("inspect", archive)
    assert "\x1b" not in inspected.stdout_text and "\r" not in inspected.stdout_text
    assert f"writer:        {ESCAPED} 1\n" in inspected.stdout_text
    assert f"source:        {ESCAPED} (MLflow {ESCAPED})\n" in inspected.stdout_text
    assert f"  {ESCAPED}" in inspected.stdout_text
    assert "forged: line" not in inspected.stdout_text.replace(ESCAPED, "")

    verified = archive_cli.run("verify", archive)
    assert verified.stdout_text.startswith(f"OK: format version 2{ESCAPED}, ") and verified.stdout_text.count("\n") == 1

    needs = tmp_path / "needs.mlar"
    needs.write_bytes(RawArchive({"required_features": [STEERING]}).finish())
    refused = archive_cli.run("verify", needs, check=False)
    assert refused.one_line_error() is None, refused.one_line_error()
    assert ESCAPED in refused.stderr_text
