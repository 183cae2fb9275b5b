"""SIGKILL `mlflow-archive export` and `import` at random points (by bytes written / runs imported), then
check: no archive under its final name after a killed export; the same import command run again leaves
every object exactly once, field by field equal to the source (tests/kill_points.py).

    PYTHONPATH=.:tests python benchmarks/bench_kill.py [POINTS] [SEED]
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kill_points import CLI, export_kill, import_kill


POINTS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 11
RUNS = 30


def main() -> None:
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = f"sqlite:///{work}/source.db"
        subprocess.run([sys.executable, "-c", f"from mlflow_archive import log_demo_runs; log_demo_runs({source!r}, runs={RUNS}, steps=200)"],
                       cwd=work, check=True, capture_output=True)
        archive = work / "full.mlar"
        subprocess.run([CLI, "export", "-o", str(archive), "--tracking-uri", source, "--quiet"], cwd=work, check=True)
        size = archive.stat().st_size
        started, problems, killed = time.perf_counter(), [], 0
        for point in sorted(rng.randrange(1, size) for _ in range(POINTS)):
            outcome, found = export_kill(source, work, point)
            killed += outcome.killed
            problems += found
        print(f"export: {POINTS} points in 1..{size} bytes, {killed} killed before the end, "
              f"{len(problems)} problem(s), {time.perf_counter() - started:.0f} s")
        started, import_problems, killed = time.perf_counter(), [], 0
        for point in sorted(rng.randrange(0, RUNS + 1) for _ in range(POINTS)):
            outcome, found = import_kill(source, archive, work, point)
            killed += outcome.killed
            import_problems += found
        print(f"import: {POINTS} points in 0..{RUNS} runs, {killed} killed before the end, "
              f"{len(import_problems)} problem(s), {time.perf_counter() - started:.0f} s")
        for problem in problems + import_problems:
            print(" -", problem[:2000])
        sys.exit(1 if problems or import_problems else 0)


if __name__ == "__main__":
    main()
