"""SIGKILL our own export and import processes at chosen points, then check what is left.

Used by tests/test_kill_points.py (a few points) and benchmarks/kill_points.py (20 points each).
The points are picked by progress, not by time: for an export, by bytes in the ``.partial`` file;
for an import, by runs present in the destination database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compare import compare_servers

CLI = str(Path(sys.executable).parent / "mlflow-archive")
POLL = 0.005


@dataclass
class Killed:
    point: int  # the progress at which the kill was asked for
    reached: int  # the progress seen when the process was killed (or when it ended by itself)
    killed: bool  # false when the process finished before reaching the point


def run_until(args: list[str], progress: Callable[[], int], point: int, cwd: Path) -> Killed:
    """Start ``mlflow-archive ARGS`` and SIGKILL it as soon as ``progress()`` reaches ``point``."""
    process = subprocess.Popen([CLI, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            reached = progress()
            if reached >= point:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return Killed(point, reached, True)
            time.sleep(POLL)
        return Killed(point, progress(), False)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def partial_size(target: Path) -> Callable[[], int]:
    """Bytes in the export's ``NAME.<random>.partial`` file next to ``target`` (0 before it exists)."""
    def size() -> int:
        total = 0
        for path in target.parent.glob(f"{target.name}.*.partial"):
            with contextlib.suppress(FileNotFoundError):  # renamed to its final name meanwhile
                total += path.stat().st_size
        return total
    return size


def run_count(database: Path) -> Callable[[], int]:
    def count() -> int:
        if not database.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.1) as db:
                return db.execute("SELECT count(*) FROM runs").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is being created, or the database is locked
            return 0
    return count


def export_kill(source_uri: str, workdir: Path, point: int) -> tuple[Killed, list[str]]:
    """Kill an export once its partial file holds ``point`` bytes; the problems found afterwards."""
    target = workdir / f"killed-{point}.mlar"
    killed = run_until(["export", "-o", str(target), "--tracking-uri", source_uri, "--quiet"],
                       partial_size(target), point, workdir)
    problems = []
    if killed.killed and target.exists():
        problems.append(f"export killed at {killed.reached} bytes left {target.name} under its final name")
    return killed, problems


def import_kill(source_uri: str, archive: Path, workdir: Path, point: int) -> tuple[Killed, list[str]]:
    """Kill an import into a fresh database once ``point`` runs exist, run the same command again, and
    compare the destination with the source field by field."""
    database = workdir / f"dest-{point}.db"
    dest_uri = f"sqlite:///{database}"
    args = ["import", "-i", str(archive), "--tracking-uri", dest_uri, "--quiet", "--no-verify"]
    killed = run_until(args, run_count(database), point, workdir)
    rerun = subprocess.run([CLI, *args], cwd=workdir, capture_output=True, text=True)
    problems = []
    if rerun.returncode != 0:
        problems.append(f"import killed at {killed.reached} runs: the rerun failed: {rerun.stderr[-500:]}")
    else:
        comparison = compare_servers(source_uri, dest_uri, exact=True, raise_on_difference=False)
        if comparison.differences:
            problems.append(f"import killed at {killed.reached} runs: {comparison.report()}")
    return killed, problems
