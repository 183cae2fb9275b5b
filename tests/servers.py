"""Start and stop real ``mlflow server`` processes for the tests.

Each server listens on 127.0.0.1 on a free port, keeps its runs in a SQLite
file and serves (proxies) artifacts from a local directory, exactly like a
small production tracking server. Startup costs several seconds of CPU (two
Python interpreters importing MLflow), so the fixtures in ``conftest.py``
start servers in background threads and share them where they can.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
_LOG_TAIL = 4000


def console_script(name: str) -> str:
    """A console script (``mlflow``, ``mlflow-archive``, ``moto_server``) of the interpreter running the tests,
    never whatever comes first on PATH."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable}")
    return str(candidate)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    # The job runner starts a huey consumer with several worker processes: slow to
    # start, and nothing here needs it.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no usage reports (and their network waits) from tests
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    env["PYTHONUNBUFFERED"] = "1"
    # uvicorn closes a connection idle for 5 s; a test's client reusing it at that instant gets
    # "Connection reset by peer" (the suite sets MLflow's retries to 0). Idle connections outlive the suite.
    env["UVICORN_TIMEOUT_KEEP_ALIVE"] = "3600"
    # Webhooks to loopback URLs, and a fixed key for their secrets (else a random one per process).
    env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] = "http,https"
    env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] = "true"
    env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] = "bWxmbG93LWFyY2hpdmUtdGVzdHMtd2ViaG9vay1rZXk="
    env["MLFLOW_WEBHOOK_CACHE_TTL"] = "1"  # seconds a server keeps its webhooks per event (default 60)
    env["MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"] = "true"  # scorers written in code register only then
    return env


class ServerStartError(RuntimeError):
    pass


class MlflowServer:
    """A running ``mlflow server``; ``stop()`` ends its whole process group."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, log_path: Path, log_file, backend_uri: str) -> None:
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.backend_path = root / "mlflow.db"
        self.backend_uri = backend_uri
        self.artifacts_path = root / "artifacts"
        self.log_path = log_path
        self.process = process
        self._log_file = log_file
        self._lock = threading.Lock()
        self._stopped = False
        _live.add(self)

    def __repr__(self) -> str:
        return f"MlflowServer({self.url}, root={self.root})"

    def log_tail(self, limit: int = _LOG_TAIL) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        return text[-limit:]

    def is_healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop_in_background(self) -> threading.Thread:
        """Stop without waiting (a graceful stop takes seconds); ``stop()`` later waits for it."""
        thread = threading.Thread(target=self.stop, name=f"stop-{self.port}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            _live.discard(self)
            if self.process.poll() is None:
                pgid = self.process.pid  # started with start_new_session=True: it leads its group
                _signal_group(pgid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _signal_group(pgid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_TIMEOUT)
                # The uvicorn child may outlive the `mlflow server` parent for a moment.
                _signal_group(pgid, signal.SIGKILL)
            else:
                _signal_group(self.process.pid, signal.SIGKILL)
            if self._log_file is not None and not self._log_file.closed:
                self._log_file.close()


_live: set[MlflowServer] = set()


def stop_all(servers) -> None:
    """Stop servers in parallel."""
    threads = [server.stop_in_background() for server in servers]
    for thread in threads:
        thread.join()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort when the test session dies without running its fixture finalizers."""
    stop_all(list(_live))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _launch(root: Path, port: int, venv: Path | None, backend_uri: str | None) -> MlflowServer:
    root.mkdir(parents=True, exist_ok=True)
    backend_uri = backend_uri or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    log_path = root / f"server-{port}.log"
    log_file = open(log_path, "wb")
    cmd = [
        str(venv / "bin" / "mlflow") if venv else console_script("mlflow"),
        "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]
    if venv is None:  # MLflow 2.x has no such option
        # Host-header checks and CORS are irrelevant on loopback in tests.
        cmd.append("--disable-security-middleware")
    process = subprocess.Popen(
        cmd,
        cwd=root,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return MlflowServer(root, port, process, log_path, log_file, backend_uri)


def start_server(
    root: Path, timeout: float = STARTUP_TIMEOUT, attempts: int = 3, venv: Path | None = None, backend_uri: str | None = None
) -> MlflowServer:
    """Start a server whose files live under ``root`` and wait until ``/health`` answers.

    ``venv``: a virtualenv with another MLflow (``legacy_venv``) to run the server from. ``backend_uri``: a
    database other than ``root/mlflow.db`` (the artifacts stay in ``root/artifacts``).
    """
    root = Path(root)
    last_error = None
    for _ in range(attempts):
        server = _launch(root, free_port(), venv, backend_uri)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                break
            if server.is_healthy():
                return server
            time.sleep(0.2)
        exited = server.process.poll()
        log = server.log_tail()
        server.stop()
        if exited is not None and "address already in use" in log.lower():
            last_error = f"port {server.port} was taken; log:\n{log}"
            continue  # lost the race for the free port: try another one
        state = f"exited with code {exited}" if exited is not None else f"no answer on /health after {timeout:.0f} s"
        raise ServerStartError(f"mlflow server at {server.url} {state}; its log ({server.log_path}):\n{log}")
    raise ServerStartError(f"mlflow server could not start after {attempts} attempts: {last_error}")


# Two cores: starting more servers at once only makes each of them later.
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlflow-server-start")


def start_server_async(root: Path, timeout: float = STARTUP_TIMEOUT) -> Future:
    """Start a server in a background thread; ``future.result()`` is the running server."""
    return _executor.submit(start_server, root, timeout)


# -- An MLflow 2.x server, from a virtualenv built once and cached ----------------------------

LEGACY_MLFLOW = "2.22"
# MLflow 2.22 breaks with SQLAlchemy 2.1 and needs pkg_resources, which setuptools 81 dropped; its
# span processor fails (no trace is logged) with OpenTelemetry's SDK from 1.34 on.
LEGACY_REQUIREMENTS = (f"mlflow=={LEGACY_MLFLOW}.*", "sqlalchemy<2.1", "setuptools<81", "opentelemetry-sdk<1.34")
VENV_CACHE = Path(os.environ.get("MLFLOW_ARCHIVE_TEST_CACHE", Path.home() / ".cache" / "mlflow-archive-tests"))
timings: dict[str, float] = {}  # seconds: "venv_build" (0 when cached), "legacy_start"


def legacy_venv(version: str = LEGACY_MLFLOW) -> Path:
    """A virtualenv with MLflow ``version`` under VENV_CACHE, built on first use (about a minute)."""
    target = VENV_CACHE / f"mlflow-{version}-py{sys.version_info.major}.{sys.version_info.minor}"
    complete = target / "complete"  # holds the requirements it was built with
    if complete.exists() and complete.read_text() == " ".join(LEGACY_REQUIREMENTS):
        timings.setdefault("venv_build", 0.0)
        return target
    started = time.monotonic()
    shutil.rmtree(target, ignore_errors=True)  # a build that was interrupted
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, capture_output=True)
    install = subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *LEGACY_REQUIREMENTS],
        capture_output=True, text=True,
    )
    if install.returncode != 0:
        raise ServerStartError(f"could not build the MLflow {version} virtualenv in {target}:\n{install.stderr[-_LOG_TAIL:]}")
    complete.write_text(" ".join(LEGACY_REQUIREMENTS))
    timings["venv_build"] = time.monotonic() - started
    return target


def start_legacy_server(root: Path) -> MlflowServer:
    venv = legacy_venv()
    started = time.monotonic()
    server = start_server(root, venv=venv)
    timings["legacy_start"] = time.monotonic() - started
    return server


# Its own thread: the virtualenv build takes a minute, which must not hold up the other servers.
_legacy_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-legacy-server")


def prepare_legacy_venv() -> Future:
    """Start building the virtualenv now, so that the build overlaps other tests."""
    return _legacy_executor.submit(legacy_venv)


def start_legacy_server_async(root: Path) -> Future:
    return _legacy_executor.submit(start_legacy_server, root)


if __name__ == "__main__":  # manual check: python tests/servers.py /tmp/some-dir
    import tempfile

    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    started = time.monotonic()
    srv = start_server(base)
    print(f"{srv} healthy after {time.monotonic() - started:.1f} s")
    srv.stop()
    print("stopped:", srv.process.poll())
