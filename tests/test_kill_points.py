"""Crash safety of our own processes: `export` and `import` killed with SIGKILL midway (tests/kill_points.py;
benchmarks/bench_kill.py runs 20 points of each)."""

from __future__ import annotations

import subprocess

from kill_points import CLI, export_kill, import_kill
from mlflow_archive import log_demo_runs

RUNS = 6


def test_killed_export_leaves_no_archive_and_killed_import_finishes_on_rerun(tmp_path):
    source = f"sqlite:///{tmp_path}/source.db"
    log_demo_runs(source, runs=RUNS, steps=20)
    archive = tmp_path / "full.mlar"
    subprocess.run([CLI, "export", "-o", str(archive), "--tracking-uri", source, "--quiet"], cwd=tmp_path, check=True)

    exported, problems = export_kill(source, tmp_path, archive.stat().st_size // 2)
    assert exported.killed and exported.reached < archive.stat().st_size
    imported, more = import_kill(source, archive, tmp_path, RUNS // 2)
    assert imported.killed and imported.reached < RUNS
    assert not problems + more, "\n".join(problems + more)
