#!/usr/bin/env python3
"""Speed of an export read straight from the database beside the REST export of the same data.

    python benchmarks/bench_database_export.py --scale small
    python benchmarks/bench_database_export.py --scale medium --no-rest-export
    python benchmarks/bench_database_export.py --scale medium --rest-latency-ms 0,50

The workload of ``workload.py`` is logged straight into a SQLite store, exported from that file
(``--tracking-uri sqlite:///...``: one read-only snapshot, histories in bulk) and, with
``--rest-export`` (default), over REST from an ``mlflow server`` started on the same file, once per
``--rest-latency-ms`` value (through tests/flaky_proxy.py, which delays every round trip by that
much, as between two clouds). Each export runs in a child process, which reports its peak RSS; the
table members of every archive are compared byte for byte with the database export's (only the
header and the trailer may differ).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import workload  # noqa: E402
from bench_tracking import Server, table  # noqa: E402
from flaky_proxy import FlakyProxy  # noqa: E402

CHILD = """
import json, resource, sys, time
from mlflow_archive import export_archive
archive, uri = sys.argv[1:3]
started = time.monotonic()
summary = export_archive(archive, tracking_uri=uri)
seconds = time.monotonic() - started
assert summary.ok, summary.lines()
print(json.dumps({"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
ENVELOPE = {"header.json.zst", "trailer.json.zst"}  # they say where and when the archive was made


def child_export(archive: Path, uri: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(archive), uri], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"export from {uri} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def member_digests(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(workload.SCALES), default="small")
    parser.add_argument("--rest-export", action=argparse.BooleanOptionalAction, default=True,
                        help="also export over REST from a server on the same file (default; 10+ minutes at medium)")
    parser.add_argument("--rest-latency-ms", default="0",
                        help="comma-separated round-trip delays for the REST exports, e.g. 0,50 (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-database-export-"))
    root = tmp / "source"  # the file Server(root) serves: root/mlflow.db
    root.mkdir()
    os.chdir(tmp)  # the store's artifacts go to ./mlruns, which the server reads the same way
    try:
        uri = f"sqlite:///{root / 'mlflow.db'}"
        started = time.monotonic()
        filled = workload.fill(uri, scale=args.scale)
        points = filled.metric_points
        print(f"scale {args.scale}: {filled.runs} runs, {points:,} metric points; filled in {time.monotonic() - started:.1f} s")
        archives = {"export from SQLite (snapshot)": tmp / "database.mlar"}
        results = {"export from SQLite (snapshot)": child_export(archives["export from SQLite (snapshot)"], uri)}
        if args.rest_export:
            server = Server(root, "source").start()
            try:
                for latency in (int(x) for x in args.rest_latency_ms.split(",")):
                    name = f"REST export from mlflow server at {latency} ms"
                    archives[name] = tmp / f"rest-{latency}.mlar"
                    with FlakyProxy(server.url, latency=latency / 1000) as proxy:
                        results[name] = child_export(archives[name], proxy.url if latency else server.url)
            finally:
                server.stop()
        rows = [[name, f"{r['seconds']:.1f}", f"{points / r['seconds']:,.0f}", f"{r['rss_mb']:.0f}",
                 f"{archives[name].stat().st_size / 1e6:.1f}"] for name, r in results.items()]
        print(table(["path", "seconds", "metric points/s", "peak RSS MB", "archive MB"], rows))
        first, *others = (member_digests(path) for path in archives.values())
        for name, other in zip(list(archives)[1:], others):
            differing = sorted(n for n in first.keys() | other.keys() if first.get(n) != other.get(n) and n not in ENVELOPE)
            print(f"{name}: " + ("table and artifact members identical" if not differing else f"members differing: {differing[:10]}"))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
