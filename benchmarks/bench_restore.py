#!/usr/bin/env python3
"""Speed of ``restore`` (rows written into an empty SQLite through MLflow's ORM tables) beside the REST import.

    python benchmarks/bench_restore.py --scale small
    python benchmarks/bench_restore.py --scale medium --no-rest-import --postgres
    python benchmarks/bench_restore.py --archive backup.mlar --no-rest-import --postgres

The workload of ``workload.py`` is logged straight into a SQLite store (faster than through a
server, and the same rows), exported to an archive (or ``--archive`` names one already made), then
restored into an empty SQLite file and artifacts folder; with ``--postgres`` also into an empty
PostgreSQL database (the ``pgserver`` wheel); with ``--rest-import`` (default) the same archive is
also imported over REST into an empty ``mlflow server``. Restore and import each run in a child process, timed from after
their imports (restore also after MLflow's schema set-up, shown apart), which also reports its own CPU time
(on a busy machine, the part of the time that is its own work; a database server's work is not in it)
and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import workload  # noqa: E402
from bench_tracking import Server, table  # noqa: E402

CHILD = """
import json, resource, sys, time
from mlflow_archive import import_archive, restore_archive
from mlflow_archive.database import DatabaseDestination
kind, archive, uri, artifacts = sys.argv[1:5]
def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

started = time.monotonic()
if kind == "restore":
    DatabaseDestination(uri).prepare()  # MLflow's schema set-up, timed apart: a fixed cost of a few seconds
    schema_seconds = time.monotonic() - started
    started = time.monotonic()
    cpu = cpu_seconds()
    summary = restore_archive(archive, uri, artifacts, verify=False)
else:
    schema_seconds = 0.0
    cpu = cpu_seconds()
    summary = import_archive(archive, tracking_uri=uri, verify=False)
seconds = time.monotonic() - started
assert summary.ok, summary.lines()
print(json.dumps({"seconds": seconds, "points": summary.counts["metric_points"].created, "schema_seconds": schema_seconds,
                  "cpu_seconds": cpu_seconds() - cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "lines": summary.lines()}))
"""


def child(kind: str, archive: Path, uri: str, artifacts: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, str(archive), uri, str(artifacts)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=list(workload.SCALES), default="small")
    parser.add_argument("--rest-import", action=argparse.BooleanOptionalAction, default=True,
                        help="also import the archive over REST into an empty server (default)")
    parser.add_argument("--archive", type=Path, help="restore this archive instead of filling and exporting one")
    parser.add_argument("--postgres", action="store_true", help="also restore into an empty PostgreSQL (pgserver)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    os.chdir(tmp)  # the source store's artifacts go to ./mlruns
    try:
        if args.archive:
            archive = args.archive.resolve()
        else:
            archive = tmp / "backup.mlar"
            fill_and_export(args.scale, tmp, archive)
        results = {"restore into empty SQLite": child("restore", archive, f"sqlite:///{tmp / 'restored.db'}", tmp / "restored-artifacts")}
        if args.postgres:
            import pgserver

            postgres = pgserver.get_server(tmp / "postgres", cleanup_mode="stop")
            try:
                uri = postgres.get_uri().replace("postgresql://", "postgresql+psycopg2://")
                results["restore into empty PostgreSQL"] = child("restore", archive, uri, tmp / "postgres-artifacts")
            finally:
                postgres.cleanup()
        if args.rest_import:
            server = Server(tmp / "rest", "destination").start()
            try:
                results["REST import into mlflow server"] = child("import", archive, server.url, tmp)
            finally:
                server.stop()
        rows = [[name, f"{r['schema_seconds']:.1f}", f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", f"{r['points'] / r['seconds']:,.0f}", f"{r['rss_mb']:.0f}"]
                for name, r in results.items()]
        print(table(["path", "schema set-up s", "seconds", "CPU s (this process)", "metric points/s", "peak RSS MB"], rows))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def fill_and_export(scale: str, tmp: Path, archive: Path) -> None:
    from mlflow_archive import export_archive

    started = time.monotonic()
    filled = workload.fill(f"sqlite:///{tmp / 'source.db'}", scale=scale)
    fill_seconds = time.monotonic() - started
    started = time.monotonic()
    export_archive(str(archive), tracking_uri=f"sqlite:///{tmp / 'source.db'}")
    export_seconds = time.monotonic() - started
    print(f"scale {scale}: {filled.runs} runs, {filled.metric_points:,} metric points; filled in {fill_seconds:.1f} s, "
          f"exported in {export_seconds:.1f} s ({archive.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
