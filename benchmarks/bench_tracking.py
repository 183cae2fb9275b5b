#!/usr/bin/env python3
"""Export and import between two real tracking servers, against the servers' own limits.

    python benchmarks/bench_tracking.py --scale small
    python benchmarks/bench_tracking.py --scale medium --workers 4 > bench-medium.txt
    python benchmarks/bench_tracking.py --scale medium --runs 100 --latency-ms 0,20,50   # medium's runs, fewer of them
    python benchmarks/bench_tracking.py --scale small --py-spy /tmp/profiles   # also profile both phases

What it does, in this order:

1. starts two ``mlflow server`` processes on 127.0.0.1 (SQLite backend and proxied
   artifacts in a temporary directory, ``--workers 1``), a source and a destination;
2. fills the source with ``workload.fill`` (see workload.py for the data);
3. server limit, read: every (run, key) history of the source through paged
   ``MlflowClient.get_metric_history``, from 1 thread, then from ``--workers`` threads;
4. ``export_archive`` source -> archive file, in a child process;
5. ``import_archive`` archive -> the empty destination, in a child process;
6. server limit, write: the same metric points (regenerated from the same seed) through
   ``log_batch``, 1000 per call, into a fresh experiment on the destination, from 1 thread,
   then from ``--workers`` threads. Runs are created before the clock starts.

With ``--latency-ms 0,20,50``, steps 3-6 run again at each latency with a local proxy (tests/flaky_proxy.py)
in front of each server that adds that delay to every request's round trip, as between two clouds, into a
new empty destination each time; a last table gives, per latency, requests per run, runs/s, points/s and the
ratio of export to the raw paged reads and of import to the raw ``log_batch`` writes at the same latency.

Export and import run in their own child processes, so "peak RSS" is the high-water
mark (VmHWM) of the process doing that phase alone; "RSS ready" is its RSS once
MLflow and mlflow_archive are imported, before the call. The child also counts every
HTTP request it makes (by endpoint, with the summed latency over all threads).
"client CPU" is user+system CPU of the process doing the phase, "server CPU" that of
the server's process group during the phase: with 2 cores, client + server CPU close
to 2 x seconds means the machine, not the servers, was the limit. MB is 10**6 bytes.
The load average is printed with each phase because other jobs may share the machine.

Nothing here asserts on times. Only the standard library, numpy and the project's
dependencies are used (py-spy only with ``--py-spy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import workload  # noqa: E402

sys.path.insert(0, str(HERE.parent / "tests"))
from flaky_proxy import FlakyProxy  # noqa: E402  (the tests' proxy, with latency)

TARGET_RATIO = 1.25
TARGET_BYTES_PER_POINT = 10.0
STARTUP_TIMEOUT = 180.0
MB = 1e6
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- Servers ------------------------------------------------------------------------------

def _mlflow_executable() -> str:
    candidate = Path(sys.executable).parent / "mlflow"
    return str(candidate) if candidate.exists() else "mlflow"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One ``mlflow server`` in its own process group, files under ``root``."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        root.mkdir(parents=True, exist_ok=True)
        (root / "artifacts").mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log_path = root / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        env = dict(os.environ)
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no huey job consumers: not needed here
        env.pop("MLFLOW_TRACKING_URI", None)
        for attempt in range(3):
            self.port = _free_port()
            cmd = [
                _mlflow_executable(), "server",
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination", str(self.root / "artifacts"),
                "--workers", "1",
                "--host", "127.0.0.1",
                "--port", str(self.port),
            ]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline and self.process.poll() is None:
                if self.healthy():
                    return self
                time.sleep(0.25)
            log_tail = self.log_path.read_text(errors="replace")[-3000:]
            self.stop()
            if "address already in use" not in log_tail.lower():
                raise RuntimeError(f"{self.name} server did not start; log tail:\n{log_tail}")
        raise RuntimeError(f"{self.name} server: no free port after 3 attempts")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the server's process group (and their reaped children)."""
        if self.process is None:
            return 0.0
        pgid = self.process.pid
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    rest = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[2]) == pgid:
                total += sum(int(x) for x in rest[11:15])
        return total / CLK_TCK

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(pgid, signal.SIGKILL)  # the uvicorn child may outlive its parent for a moment
        except (ProcessLookupError, PermissionError):
            pass
        self.process = None


# -- Phases -------------------------------------------------------------------------------

class Phase:
    def __init__(self, name: str, threads: int | str, runs: int, points: int, artifact_bytes: int = 0) -> None:
        self.name, self.threads, self.runs, self.points, self.artifact_bytes = name, threads, runs, points, artifact_bytes
        self.seconds = 0.0
        self.client_cpu: float | None = None
        self.server_cpu: float | None = None
        self.peak_rss_mb: float | None = None
        self.ready_rss_mb: float | None = None
        self.load: tuple[float, float] = (0.0, 0.0)
        self.requests: dict[str, list] = {}
        self.create_seconds: float | None = None  # raw writes: creating the runs, before the clock
        self.note = ""


class Measure:
    """Wall time, this process's CPU, one server's CPU and the load average around a block."""

    def __init__(self, phase: Phase, server: Server | None, own_cpu: bool = True) -> None:
        self.phase, self.server, self.own_cpu = phase, server, own_cpu

    def __enter__(self) -> Phase:
        self.load0 = os.getloadavg()[0]
        self.server0 = self.server.cpu_seconds() if self.server else 0.0
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self.phase

    def __exit__(self, *exc) -> None:
        p = self.phase
        p.seconds = time.perf_counter() - self.t0
        if self.own_cpu:
            p.client_cpu = time.process_time() - self.cpu0
        if self.server:
            p.server_cpu = self.server.cpu_seconds() - self.server0
        p.load = (self.load0, os.getloadavg()[0])


class ServerProfile:
    """With ``--py-spy DIR``: sample the server's processes (CPU only, non-blocking) during a block."""

    def __init__(self, server: Server, directory: Path | None, name: str) -> None:
        self.server, self.directory, self.name = server, directory, name
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProfile":
        if self.directory is not None and self.server.process is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen(
                ["py-spy", "record", "--pid", str(self.server.process.pid), "--subprocesses", "--nonblocking", "--gil",
                 "--rate", "50", "--format", "raw", "-o", str(self.directory / f"{self.name}.txt")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def raw_read(uri: str, pairs: list[tuple[str, str]], threads: int) -> int:
    """Every history in ``pairs`` through ``MlflowClient.get_metric_history`` (paged internally)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(lambda rk: len(client.get_metric_history(*rk)), pairs))


def raw_write(uri: str, spec: workload.Scale, seed: int, values: str, threads: int, label: str, phase: Phase, server: Server) -> None:
    """The workload's metric points, 1000 per ``log_batch``, into fresh runs of a fresh experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(f"raw-log-batch-{label}-{int(time.time())}")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        run_ids = list(pool.map(lambda i: client.create_run(experiment_id, start_time=workload.run_start_ms(i)).info.run_id, range(spec.runs)))
    created = time.perf_counter() - t0
    generation = [0.0]
    lock = threading.Lock()

    def one(index: int) -> int:
        g0 = time.perf_counter()
        metrics = workload.run_metrics(spec, index, seed, values)
        g = time.perf_counter() - g0
        with lock:
            generation[0] += g
        for part in workload.batches(metrics):
            client.log_batch(run_ids[index], metrics=part)
        return len(metrics)

    with Measure(phase, server):
        with ThreadPoolExecutor(threads) as pool:
            written = sum(pool.map(one, range(spec.runs)))
    phase.points = written
    phase.create_seconds = created
    phase.note = f"{spec.runs} create_run before the clock: {created:.1f} s; point generation inside: {generation[0]:.1f} s (summed over threads)"


def run_child(kind: str, uri: str, archive: Path, workers: int, tmp: Path, py_spy: Path | None) -> dict:
    result_path = tmp / f"{kind}-result.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--uri", uri, "--archive", str(archive),
           "--workers", str(workers), "--result", str(result_path)]
    if py_spy is not None:
        py_spy.mkdir(parents=True, exist_ok=True)
        cmd = ["py-spy", "record", "--idle", "--threads", "--rate", "50", "--format", "raw",
               "-o", str(py_spy / f"{kind}.txt"), "--"] + cmd
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    return json.loads(result_path.read_text())


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _endpoint(url: str) -> str:
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    path = "/" + path
    marker = "/mlflow-artifacts/artifacts"
    if marker in path:
        return path[: path.index(marker) + len(marker)] + "/<path>"
    return path


def _code_version() -> str:
    """The commit of the mlflow_archive being measured, and its uncommitted files, if it is a git checkout."""
    import mlflow_archive

    package = Path(mlflow_archive.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=package, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=package, capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return str(package)
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{package} at {head or '?'}" + (f" + uncommitted {', '.join(changed)}" if changed else "")


def child_main(args) -> int:
    """One export or import in this process; writes figures as JSON to ``args.result``."""
    import requests

    import mlflow_archive.exporting  # noqa: F401  (import cost is not part of the phase)
    import mlflow_archive.importing  # noqa: F401
    from mlflow_archive import export_archive, import_archive

    # count, seconds, bytes sent, bytes received, first start and last end (s after the call began)
    stats: dict[str, list] = defaultdict(lambda: [0, 0.0, 0, 0, float("inf"), 0.0])
    lock = threading.Lock()
    original = requests.Session.request

    def counted(self, method, url, *a, **kw):
        t0 = time.perf_counter()
        response = original(self, method, url, *a, **kw)
        t1 = time.perf_counter()
        dt = t1 - t0
        body = response.request.body
        if isinstance(body, (bytes, str)):
            sent = len(body)
        else:  # a streamed upload: its declared length
            sent = int(response.request.headers.get("Content-Length") or 0)
        received = len(response.content) if not kw.get("stream") else int(response.headers.get("Content-Length") or 0)
        with lock:
            s = stats[f"{method.upper()} {_endpoint(url)}"]
            s[0] += 1
            s[1] += dt
            s[2] += sent
            s[3] += received
            s[4] = min(s[4], t0 - started[0])
            s[5] = max(s[5], t1 - started[0])
        return response

    requests.Session.request = counted
    print(f"child {args.child}: mlflow_archive from {_code_version()}", file=sys.stderr, flush=True)
    ready_kb = _rss_kb("VmRSS")
    cpu0 = os.times()
    t0 = time.perf_counter()
    started = [t0]
    if args.child == "export":
        summary = export_archive(str(args.archive), tracking_uri=args.uri, workers=args.workers, quiet=True)
    else:
        summary = import_archive(str(args.archive), tracking_uri=args.uri, workers=args.workers, quiet=True)
    seconds = time.perf_counter() - t0
    cpu1 = os.times()
    out = {
        "seconds": seconds,
        "summary_seconds": summary.seconds,
        "ok": summary.ok,
        "lines": summary.lines(),
        "counts": {k: {f: getattr(c, f) for f in ("exported", "created", "skipped", "failed")} for k, c in summary.counts.items()},
        "archive_bytes": summary.archive_bytes,
        "client_cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "ready_rss_kb": ready_kb,
        "peak_rss_kb": _rss_kb("VmHWM"),
        "requests": dict(stats),
        "code": _code_version(),
    }
    Path(args.result).write_text(json.dumps(out))
    return 0


# -- Report -------------------------------------------------------------------------------

def _fmt(value, spec: str = ",.0f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def phase_rows(phases: list[Phase]) -> list[list[str]]:
    rows = []
    for p in phases:
        s = max(p.seconds, 1e-9)
        rows.append([
            p.name, str(p.threads), f"{p.seconds:.1f}",
            _fmt(p.runs / s if p.runs else None, ",.1f"),
            _fmt(p.points / s if p.points else None),
            _fmt(p.artifact_bytes / MB / s if p.artifact_bytes else None, ".2f"),
            _fmt(p.client_cpu, ".1f"), _fmt(p.server_cpu, ".1f"),
            _fmt(p.ready_rss_mb, ".0f"), _fmt(p.peak_rss_mb, ".0f"),
            f"{p.load[0]:.1f}/{p.load[1]:.1f}",
        ])
    return rows


def archive_composition(path: Path) -> dict[str, int]:
    parts: dict[str, int] = defaultdict(int)
    with tarfile.open(path, "r|") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            stem = name.split("-", 1)[0].split(".", 1)[0]
            parts[stem] += member.size
    return dict(parts)


def request_rows(phase: Phase, runs: int) -> list[list[str]]:
    rows = []
    for endpoint, (count, secs, sent, received, first, last) in sorted(phase.requests.items(), key=lambda kv: -kv[1][1]):
        rows.append([
            endpoint, f"{count:,}", f"{count / max(runs, 1):.2f}", f"{1000 * secs / max(count, 1):.1f}",
            f"{secs:.1f}", f"{sent / MB:.1f}", f"{received / MB:.1f}", f"{first:.2f}-{last:.2f}",
        ])
    total = sum(v[0] for v in phase.requests.values())
    rows.append(["total", f"{total:,}", f"{total / max(runs, 1):.2f}", "", f"{sum(v[1] for v in phase.requests.values()):.1f}", "", "",
                 f"of {phase.seconds:.2f}"])
    return rows


def latency_rows(by: dict, latencies: list[int], n: int, runs: int) -> list[list[str]]:
    """Export against raw paged history reads, import against raw log_batch writes, at each latency."""
    rows = []
    for latency in latencies:
        suffix = f" @{latency} ms" if latency else ""
        for ours, limit in (("export_archive", "read get_metric_history"), ("import_archive", "write log_batch")):
            p, lim = by[(f"ours: {ours}" + suffix, n)], by[(f"limit: {limit}" + suffix, n)]
            s = max(p.seconds, 1e-9)
            requests = sum(v[0] for v in p.requests.values())
            rows.append([str(latency), ours, f"{requests / max(runs, 1):.2f}", f"{p.runs / s:.1f}", _fmt(p.points / s),
                         f"{p.seconds:.1f}", f"{lim.seconds:.1f}", f"{p.seconds / max(lim.seconds, 1e-9):.2f}"])
    return rows


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(workload.SCALES), default="small")
    parser.add_argument("--runs", type=int, help="runs instead of the scale's, each of the scale's shape (e.g. --scale medium "
                                                 "--runs 100: medium's 5,000 points per run in a fifth of the time)")
    parser.add_argument("--workers", type=int, default=4, help="--workers of export/import, and threads of the N-thread limits (default 4)")
    parser.add_argument("--fill-threads", type=int, default=4, help="client threads filling the source (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--values", choices=["mixed", "float64"], default="mixed", help="metric values, see workload.py")
    parser.add_argument("--latency-ms", default="0",
                        help="comma-separated round-trip delays added to every request by a local proxy in front of "
                             "each server, e.g. 0,20,50; export, import and the raw limits run at each (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (servers' files, archive, logs)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record the export and import children (raw stacks, --idle --threads) and the servers during "
                             "export, import and the N-thread limits (CPU only) with py-spy, into DIR")
    parser.add_argument("--child", choices=["export", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    spec = workload.get_scale(args.scale)
    if args.runs:
        spec = dataclasses.replace(spec, name=f"{spec.name} x {args.runs} runs", runs=args.runs,
                                   experiments=min(spec.experiments, args.runs))
    n = max(1, args.workers)
    latencies = [int(x) for x in args.latency_ms.split(",") if x.strip()] or [0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    servers = [Server(tmp / "source", "source"), Server(tmp / "destination", "destination")]
    log = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    print(f"bench_tracking: scale {spec.name} ({spec.experiments} experiments, {spec.runs} runs, {spec.metrics} metrics x "
          f"{spec.steps} steps, {spec.params} params, {spec.artifacts} artifacts of {spec.artifact_min // 1000}-"
          f"{spec.artifact_max // 1000} KB per run), --workers {n}, values {args.values}; {os.cpu_count()} CPUs")
    print(f"start: {_uptime()}")
    phases: list[Phase] = []
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(s.start) for s in servers]:
                future.result()
        source, dest = servers
        log(f"servers up in {time.perf_counter() - t0:.1f} s: source {source.url}, destination {dest.url}")

        fill = Phase("fill source (workload)", args.fill_threads, spec.runs, spec.metric_points)
        with Measure(fill, source):
            filled = workload.fill(source.url, spec, args.fill_threads, args.seed, args.values, progress=spec.runs >= 100)
        fill.points, fill.artifact_bytes = filled.metric_points, filled.artifact_bytes
        fill.note = filled.line()
        phases.append(fill)
        log(f"filled: {filled.line()}")

        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        src_client = MlflowClient(tracking_uri=source.url)
        runs = []
        for start in range(0, len(filled.experiment_ids), 100):
            token = None
            while True:
                page = src_client.search_runs(filled.experiment_ids[start : start + 100], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
                runs += list(page)
                token = page.token
                if not token:
                    break
        pairs = [(r.info.run_id, k) for r in runs for k in sorted(r.data.metrics)]

        results = {}
        for latency in latencies:
            suffix = f" @{latency} ms" if latency else ""
            if latency != latencies[0]:  # an empty destination for each latency: a second import would create nothing
                dest.stop()
                dest = Server(tmp / f"destination-{latency}ms", f"destination {latency} ms").start()
                servers.append(dest)
            with FlakyProxy(source.url, latency=latency / 1000) as src_proxy, FlakyProxy(dest.url, latency=latency / 1000) as dest_proxy:
                src_uri = src_proxy.url if latency else source.url
                dest_uri = dest_proxy.url if latency else dest.url
                for threads in (1, n) if latency == latencies[0] else (n,):
                    phase = Phase("limit: read get_metric_history" + suffix, threads, spec.runs, 0)
                    with ServerProfile(source, args.py_spy if threads == n else None, f"server-read-{threads}t"), Measure(phase, source):
                        phase.points = raw_read(src_uri, pairs, threads)
                    phase.note = f"{len(pairs)} histories, source server"
                    phases.append(phase)
                    log(f"raw read{suffix}, {threads} thread(s): {phase.seconds:.1f} s")

                archive = tmp / "bench.mlar"
                for kind, server, uri in (("export", source, src_uri), ("import", dest, dest_uri)):
                    phase = Phase(f"ours: {kind}_archive" + suffix, n, spec.runs, filled.metric_points, filled.artifact_bytes)
                    with ServerProfile(server, args.py_spy, f"server-{kind}"), Measure(phase, server, own_cpu=False):
                        res = run_child(kind, uri, archive, n, tmp, args.py_spy)
                    results[kind] = res
                    phase.seconds = res["seconds"]  # the call alone, without the child's start and imports
                    phase.client_cpu = res["client_cpu"]
                    phase.peak_rss_mb = res["peak_rss_kb"] / 1024
                    phase.ready_rss_mb = res["ready_rss_kb"] / 1024
                    phase.requests = res["requests"]
                    counts = res["counts"]
                    points_key = "exported" if kind == "export" else "created"
                    phase.points = counts.get("metric_points", {}).get(points_key, 0)
                    phase.note = f"ok={res['ok']}; " + "; ".join(res["lines"]) + f"; code: {res.get('code')}"
                    phases.append(phase)
                    log(f"{kind}{suffix}: {phase.seconds:.1f} s, ok={res['ok']}")

                for threads in (1, n) if latency == latencies[0] else (n,):
                    phase = Phase("limit: write log_batch" + suffix, threads, spec.runs, 0)
                    with ServerProfile(dest, args.py_spy if threads == n else None, f"server-write-{threads}t"):
                        raw_write(dest_uri, spec, args.seed, args.values, threads, f"{threads}t{latency}ms", phase, dest)
                    phases.append(phase)
                    log(f"raw write{suffix}, {threads} thread(s): {phase.seconds:.1f} s")
    finally:
        for s in servers:
            s.stop()
        end_uptime = _uptime()
        if not args.keep:
            composition = archive_composition(tmp / "bench.mlar") if (tmp / "bench.mlar").exists() else {}
            shutil.rmtree(tmp, ignore_errors=True)
    if args.keep:
        composition = archive_composition(tmp / "bench.mlar")

    # ---- report
    by = {(p.name, p.threads): p for p in phases}
    first = f" @{latencies[0]} ms" if latencies[0] else ""
    export_p, import_p = by[("ours: export_archive" + first, n)], by[("ours: import_archive" + first, n)]
    print(f"end:   {end_uptime}")
    print()
    print(table(
        ["phase", "threads", "seconds", "runs/s", "points/s", "artifact MB/s", "client CPU s", "server CPU s", "RSS ready MB", "peak RSS MB", "load1 start/end"],
        phase_rows(phases),
    ))
    print()
    for p in phases:
        if p.note:
            print(f"- {p.name} ({p.threads}): {p.note}")
    print()

    def ratio_row(ours: Phase, limit_name: str, threads: int, with_create: bool = False) -> list[str]:
        lim = by[(limit_name + first, threads)]
        limit_seconds = lim.seconds + (lim.create_seconds or 0.0 if with_create else 0.0)
        r = ours.seconds / max(limit_seconds, 1e-9)
        against = f"{limit_name} x{threads}" + (" + its create_run" if with_create else "")
        return [ours.name, against, f"{ours.seconds:.1f}", f"{limit_seconds:.1f}", f"{r:.2f}",
                f"{TARGET_RATIO:.2f}", "yes" if r <= TARGET_RATIO else "NO"]

    print(table(
        ["ours", "against", "ours s", "limit s", "ratio", "target", "within"],
        [
            ratio_row(import_p, "limit: write log_batch", 1),
            ratio_row(import_p, "limit: write log_batch", n),
            ratio_row(import_p, "limit: write log_batch", n, with_create=True),
            ratio_row(export_p, "limit: read get_metric_history", 1),
            ratio_row(export_p, "limit: read get_metric_history", n),
        ],
        "llrrrrl",
    ))
    print()
    archive_bytes = results["export"]["archive_bytes"]
    points = max(filled.metric_points, 1)
    metric_bytes = composition.get("run_metrics", 0)
    artifact_bytes = composition.get("artifacts", 0)
    print(table(
        ["archive", "bytes", "bytes per metric point"],
        [
            ["whole archive", f"{archive_bytes:,}", f"{archive_bytes / points:.2f}"],
            ["  run_metrics members", f"{metric_bytes:,}", f"{metric_bytes / points:.2f}"],
            ["  artifacts members", f"{artifact_bytes:,}", f"{artifact_bytes / points:.2f}"],
            ["  everything else", f"{archive_bytes - metric_bytes - artifact_bytes:,}", f"{(archive_bytes - metric_bytes - artifact_bytes) / points:.2f}"],
            [f"target (< {TARGET_BYTES_PER_POINT:g} B/point): whole / metrics only", "",
             f"{'yes' if archive_bytes / points < TARGET_BYTES_PER_POINT else 'NO'} / {'yes' if metric_bytes / points < TARGET_BYTES_PER_POINT else 'NO'}"],
        ],
        "lrr",
    ))
    print(f"(artifact files: {filled.artifact_files}, {filled.artifact_bytes / MB:.1f} MB raw; metric points: {filled.metric_points:,})")
    print()
    print(f"At each latency (added to every request's round trip by a local proxy), {n} workers / threads:")
    print(table(["latency ms", "phase", "requests per run", "runs/s", "points/s", "seconds", "raw limit s", "ratio to raw limit"],
                latency_rows(by, latencies, n, spec.runs)))
    for p in (p for p in phases if p.requests):
        print()
        print(f"HTTP requests made by {p.name} ({spec.runs} runs; latency summed over all threads; "
              "from-to: the first request's start and the last one's end, in s after the call began):")
        print(table(["endpoint", "requests", "per run", "mean ms", "total s", "sent MB", "received MB", "from-to s"],
                    request_rows(p, spec.runs)))
    if args.keep:
        print(f"\nkept: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
