"""Fixtures of the whole suite: the sample archive, and real ``mlflow server`` processes.

Servers (tests/servers.py): ``source_server`` with the shared data set ``tracking_dataset``
(tests/tracking_data.py), ``scratch_server`` (a shared source for small per-test data under
``unique_prefix`` names), ``dest_server`` (a shared destination), ``module_dest_server`` and
``fresh_dest_server`` (empty, per module and per test), ``legacy_server`` (MLflow 2.22). A server
starts only when a selected test needs one; when the first is asked for, the pool queues every
server the selected tests will need, in the order they will need them, so startups overlap with
the tests. Every server is stopped at the end of the session, or of its module or test.
"""

import os
import re
import threading
import uuid

import pytest

from samples import build_sample
from servers import prepare_legacy_venv, start_legacy_server_async, start_server_async, stop_all, timings
from tracking_data import build_dataset

# A dead or hung server must fail a test fast, not after minutes of retries.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
# No usage reports from test processes and the CLI subprocesses they start.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

NAMED_SERVER_FIXTURES = {
    "source_server": "source",
    "tracking_dataset": "source",
    "dest_server": "dest",
    "scratch_server": "scratch",
    "legacy_server": "legacy",
}
FRESH_LOOKAHEAD = 2  # fresh servers started ahead of the test that takes them


class _ServerPool:
    """Starts ``mlflow server`` processes ahead of need and stops them all at the end."""

    def __init__(self, base, plan):
        self._base = base
        self._lock = threading.Lock()
        self._named = {}
        self._fresh = []
        self._all = []
        self._count = 0
        # plan: server names ("source", ...) and "fresh" in the order tests will ask for them
        self._fresh_demand = plan.count("fresh")
        for entry in plan:
            if entry == "fresh":
                if len(self._fresh) < FRESH_LOOKAHEAD:
                    self._fresh.append(self._submit("fresh"))
            else:
                self._named_future(entry)

    def _submit(self, label):
        self._count += 1
        start = start_legacy_server_async if label == "legacy" else start_server_async
        future = start(self._base / f"{self._count:02d}-{label}")
        self._all.append(future)
        return future

    def _named_future(self, name):
        with self._lock:
            if name not in self._named:
                self._named[name] = self._submit(name)
            return self._named[name]

    def named(self, name):
        return self._named_future(name).result()

    def fresh(self):
        with self._lock:
            future = self._fresh.pop(0) if self._fresh else self._submit("fresh")
            self._fresh_demand = max(self._fresh_demand - 1, 0)
            while len(self._fresh) < min(self._fresh_demand, FRESH_LOOKAHEAD):
                self._fresh.append(self._submit("fresh"))
        return future.result()

    def stop_all(self):
        started = []
        for future in self._all:
            if future.cancel():  # still queued: never started
                continue
            try:
                started.append(future.result())
            except Exception:
                pass
        stop_all(started)


def _server_plan(items):
    plan, seen_modules = [], set()
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture in names:
            server = NAMED_SERVER_FIXTURES.get(fixture)
            if server is not None and server not in plan:
                plan.append(server)
        if "module_dest_server" in names and getattr(item, "module", None) not in seen_modules:
            seen_modules.add(getattr(item, "module", None))
            plan.append("fresh")
        if "fresh_dest_server" in names:
            plan.append("fresh")
    return plan


def pytest_collection_finish(session):
    """The MLflow 2.x virtualenv takes a minute to build on a fresh machine: start at once if a test needs it."""
    if session.config.option.collectonly:
        return
    if any("legacy_server" in getattr(item, "fixturenames", ()) for item in session.items):
        prepare_legacy_venv()


def pytest_terminal_summary(terminalreporter):
    if timings:
        terminalreporter.write_line(
            f"MLflow 2.x test server: virtualenv build {timings.get('venv_build', 0):.1f} s (0: cached), "
            f"server start {timings.get('legacy_start', 0):.1f} s"
        )


@pytest.fixture(scope="session")
def mlflow_server_pool(request, tmp_path_factory):
    pool = _ServerPool(tmp_path_factory.mktemp("mlflow-servers"), _server_plan(getattr(request.session, "items", [])))
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def source_server(mlflow_server_pool):
    """The server holding the shared data set (``tracking_dataset``); tests must not change it."""
    return mlflow_server_pool.named("source")


@pytest.fixture(scope="session")
def tracking_dataset(source_server):
    """The shared data set of tests/tracking_data.py, built once on ``source_server``."""
    return build_dataset(source_server.url)


@pytest.fixture(scope="session")
def dest_server(mlflow_server_pool):
    """A destination shared by the session: tests must use names from ``unique_prefix``."""
    return mlflow_server_pool.named("dest")


@pytest.fixture(scope="session")
def scratch_server(mlflow_server_pool):
    """A source shared by the session for small per-test data under ``unique_prefix`` names."""
    return mlflow_server_pool.named("scratch")


@pytest.fixture(scope="session")
def legacy_server(mlflow_server_pool):
    """An MLflow 2.22 server (tests/servers.py builds and caches its virtualenv); tests use ``unique_prefix`` names."""
    return mlflow_server_pool.named("legacy")


@pytest.fixture(scope="module")
def module_dest_server(mlflow_server_pool):
    """An empty destination for the tests of one module."""
    server = mlflow_server_pool.fresh()
    yield server
    server.stop_in_background()


@pytest.fixture
def fresh_dest_server(mlflow_server_pool):
    """An empty destination for one test."""
    server = mlflow_server_pool.fresh()
    yield server
    server.stop_in_background()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A private PostgreSQL 16 from the pgserver wheel, one per module; yields a URI maker for new databases."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")

    def database(name: str) -> str:
        server.psql(f"CREATE DATABASE {name};")
        return server.get_uri().replace("postgresql://", "postgresql+psycopg2://").replace("/postgres?", f"/{name}?")

    yield database
    server.cleanup()


@pytest.fixture
def unique_prefix(request):
    """A prefix no other test uses, for experiment names on the shared servers."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:30].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:8]}-"


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The sample archive (tests/samples.py): every table, every member kind, edge values."""
    return build_sample(tmp_path_factory.mktemp("sample"))
