#!/usr/bin/env python3
"""Write and read a large synthetic archive through the public writer and reader, and print figures.

    python benchmarks/bench_container.py --scale 0.01          # quick run
    python benchmarks/bench_container.py                       # full scale: 10 M metric rows, 1 GiB of artifacts
    python benchmarks/bench_container.py --scale 0.05 --memory-check

Full scale is 2,000 runs x 10 metric keys x 500 steps = 10,000,000 ``run_metrics``
rows in the ``runs`` section, in chunks of 100 runs, plus 1 GiB of artifact files
(partly compressible, a few KiB to 50 MiB each). ``--scale`` multiplies the number
of runs and the artifact bytes.

Each phase runs in its own child process, so each peak RSS figure belongs to that
phase alone:

- prepare: generate the artifact files into a temporary directory (not measured);
- write:   ArchiveWriter -> file; metric rows are generated on the fly, one
           RecordBatch per run appended to ``Chunk.table("run_metrics")``; the
           generation time is reported separately;
- read:    iterate ArchiveReader, ``read_table()`` every table member and read every
           artifact file of ``iter_artifacts()`` to its end;
- verify:  ``verify_archive(path)``.

MB is 10**6 bytes, MiB is 2**20. "archive MB/s" is bytes of the archive file per
second of wall time. The archive is read right after it was written, so reads are
served from the page cache: read and verify figures are CPU figures, not disk ones.
Only the standard library, numpy and the project's dependencies are used. Nothing
here asserts on times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FULL_RUNS = 2000
KEYS = (
    "accuracy", "epoch", "f1", "gpu_memory", "grad_norm",
    "learning_rate", "loss", "throughput", "val_accuracy", "val_loss",
)
STEPS = 500
RUNS_PER_CHUNK = 100
FULL_ARTIFACT_BYTES = 1 << 30
ARTIFACT_MIN, ARTIFACT_MAX = 4 << 10, 50 << 20
BLOCK = 64 << 10  # artifact content is made of blocks of this size
SEED = 20240601
MB = 1e6
MIB = 1 << 20


# -- The plan: everything a phase needs to know, shared through a JSON file ----------------------

def make_plan(scale: float, workdir: Path, archive: Path) -> dict:
    runs = max(1, round(FULL_RUNS * scale))
    return {
        "scale": scale,
        "runs": runs,
        "runs_per_chunk": RUNS_PER_CHUNK,
        "chunks": -(-runs // RUNS_PER_CHUNK),
        "keys": list(KEYS),
        "steps": STEPS,
        "metric_rows": runs * len(KEYS) * STEPS,
        "artifact_budget": int(FULL_ARTIFACT_BYTES * scale),
        "artifact_dir": str(workdir / "artifacts"),
        "manifest": str(workdir / "artifacts.json"),
        "archive": str(archive),
        "seed": SEED,
    }


def run_id_of(index: int) -> str:
    """A 32-hex-digit run ID like MLflow's, deterministic per index."""
    import hashlib

    return hashlib.md5(f"run-{index}".encode()).hexdigest()


def _rss_now_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _usage() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    hwm = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return {"peak_rss_kib": ru.ru_maxrss, "vm_hwm_kib": hwm, "process_cpu_s": ru.ru_utime + ru.ru_stime}


# -- Phase: prepare (artifact files) ------------------------------------------------------------

def phase_prepare(plan: dict) -> dict:
    import numpy as np

    rng = np.random.default_rng(plan["seed"])
    root = Path(plan["artifact_dir"])
    root.mkdir(parents=True, exist_ok=True)
    budget, total, files = plan["artifact_budget"], 0, []
    log_span = np.log(ARTIFACT_MAX / ARTIFACT_MIN)
    phrase = None
    started = time.perf_counter()
    while total < budget:
        # Skewed log-uniform: the median file is ~40 KiB, a few reach 50 MiB (model weights).
        size = int(ARTIFACT_MIN * np.exp(log_span * rng.random() ** 2))
        size = min(size, budget - total)
        run = int(rng.integers(plan["runs"]))
        number = len(files)
        local = root / f"{number:06d}.bin"
        with open(local, "wb") as out:
            left = size
            while left:
                n = min(BLOCK, left)
                kind = rng.random()
                if kind < 0.4:  # incompressible (weights, images)
                    block = rng.bytes(n)
                elif kind < 0.7:  # one repeated phrase (logs, configs): compresses to almost nothing
                    if phrase is None or rng.random() < 0.1:
                        phrase = rng.integers(32, 127, size=512, dtype=np.uint8).tobytes()
                    block = (phrase * (n // len(phrase) + 1))[:n]
                else:  # digits only (CSV-like): ~3.3 bits of entropy per byte
                    block = rng.integers(48, 58, size=n, dtype=np.uint8).tobytes()
                out.write(block)
                left -= n
        files.append({"run": run, "path": f"{run_id_of(run)}/artifacts/outputs/file-{number:06d}.bin",
                      "local": str(local), "size": size})
        total += size
    files.sort(key=lambda f: (f["run"], f["path"]))
    Path(plan["manifest"]).write_text(json.dumps(files))
    return {"seconds": time.perf_counter() - started, "files": len(files), "bytes": total}


# -- Phase: write -------------------------------------------------------------------------------

def phase_write(plan: dict) -> dict:
    import numpy as np
    import pyarrow as pa

    from mlflow_archive.archive import ArchiveWriter
    from mlflow_archive.schemas import TABLES

    base_rss = _rss_now_kib()
    rng = np.random.default_rng(plan["seed"] + 1)
    schema = TABLES["run_metrics"].schema
    keys, steps = plan["keys"], plan["steps"]
    n = len(keys) * steps
    key_array = pa.array(sorted(keys), pa.string())
    key_index = pa.array(np.repeat(np.arange(len(keys), dtype=np.int32), steps))
    zero_index = pa.array(np.zeros(n, dtype=np.int32))
    step_col = pa.array(np.tile(np.arange(steps, dtype=np.int64), len(keys)))
    key_col = key_array.take(key_index)
    key_offsets = np.repeat(np.arange(len(keys), dtype=np.int64), steps)
    t0_ms = 1_700_000_000_000

    def metric_batch(run: int) -> pa.RecordBatch:
        """One run's full history, sorted by (key, step): 10 random walks over 500 steps."""
        start = t0_ms + run * 3_600_000
        step_times = start + np.cumsum(rng.integers(1, 8, size=steps))  # a few ms between steps
        timestamps = np.tile(step_times, len(keys)) + key_offsets
        walks = np.cumsum(rng.normal(0.0, 0.01, size=(len(keys), steps)), axis=1) + rng.normal(size=(len(keys), 1))
        columns = {
            "run_id": pa.array([run_id_of(run)]).take(zero_index),
            "key": key_col,
            "value": pa.array(walks.ravel()),
            "timestamp": pa.array(timestamps),
            "step": step_col,
        }
        # Built from the live schema: any other (optional) column is left null.
        return pa.RecordBatch.from_arrays(
            [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema], schema=schema
        )

    files = json.loads(Path(plan["manifest"]).read_text())
    by_run: dict[int, list[dict]] = {}
    for f in files:
        by_run.setdefault(f["run"], []).append(f)

    gen_s = 0.0
    metric_s = 0.0
    artifact_s = 0.0
    started, cpu0 = time.perf_counter(), time.process_time()
    with open(plan["archive"], "wb") as stream:
        writer = ArchiveWriter(stream, {"source": {"kind": "benchmark", "scale": plan["scale"]}}, mtime=int(t0_ms // 1000))
        writer.chunk("experiments").write_table("experiments", {
            "experiment_id": ["1"], "name": ["bench"], "artifact_location": ["mlflow-artifacts:/1"],
            "lifecycle_stage": ["active"], "creation_time": [t0_ms], "last_update_time": [t0_ms], "tags": [[]],
        })
        for first in range(0, plan["runs"], plan["runs_per_chunk"]):
            runs = range(first, min(first + plan["runs_per_chunk"], plan["runs"]))
            chunk = writer.chunk("runs")
            chunk.write_table("runs", {
                "run_id": [run_id_of(r) for r in runs],
                "experiment_id": ["1"] * len(runs),
                "run_name": [f"run-{r}" for r in runs],
                "user_id": ["bench"] * len(runs),
                "status": ["FINISHED"] * len(runs),
                "start_time": [t0_ms + r * 3_600_000 for r in runs],
                "end_time": [t0_ms + r * 3_600_000 + 600_000 for r in runs],
                "lifecycle_stage": ["active"] * len(runs),
                "artifact_uri": [f"mlflow-artifacts:/1/{run_id_of(r)}/artifacts" for r in runs],
            })
            t = time.perf_counter()
            with chunk.table("run_metrics") as sink:
                for r in runs:
                    g = time.perf_counter()
                    batch = metric_batch(r)
                    gen_s += time.perf_counter() - g
                    sink.append(batch)
            metric_s += time.perf_counter() - t
            t = time.perf_counter()
            with chunk.artifacts() as sink:
                for r in runs:
                    for f in by_run.get(r, ()):
                        sink.add(f["path"], Path(f["local"]))
            artifact_s += time.perf_counter() - t
        writer.close()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu0
    metric_members = [m for m in writer.members if "/run_metrics-" in m.name]
    artifact_members = [m for m in writer.members if m.name.endswith(".tar.zst")]
    return {
        "seconds": seconds, "cpu_s": cpu_s,
        "gen_s": gen_s,
        "metric_s": metric_s,
        "artifact_s": artifact_s,
        "archive_bytes": writer.bytes_written,
        "file_bytes": os.path.getsize(plan["archive"]),
        "members": len(writer.members) + 1,
        "metric_rows": writer.counts.get("run_metrics", 0),
        "metric_member_bytes": sum(m.size for m in metric_members),
        "metric_members": len(metric_members),
        "artifact_members": len(artifact_members),
        "artifact_member_bytes": sum(m.size for m in artifact_members),
        "artifact_raw_bytes": writer.counts.get("artifact_bytes", 0),
        "artifact_files": writer.counts.get("artifact_files", 0),
        "base_rss_kib": base_rss,
    }


# -- Phase: read --------------------------------------------------------------------------------

def phase_read(plan: dict) -> dict:
    import pyarrow.parquet as pq

    from mlflow_archive.archive import ArchiveReader
    from mlflow_archive.members import ARTIFACTS_EXT

    base_rss = _rss_now_kib()
    rows: dict[str, int] = {}
    column_bytes: dict[str, int] = {}
    untimed_s = 0.0
    container_s = tables_s = artifacts_s = 0.0
    files = artifact_bytes = 0
    started, cpu0 = time.perf_counter(), time.process_time()
    with open(plan["archive"], "rb") as stream:
        reader = ArchiveReader(stream)
        members = iter(reader)
        while True:
            t = time.perf_counter()
            member = next(members, None)  # reads the member into its spool and checks its sha256
            container_s += time.perf_counter() - t
            if member is None:
                break
            t = time.perf_counter()
            if member.kind == ARTIFACTS_EXT:
                for _path, data in member.iter_artifacts():
                    while chunk := data.read(1 << 20):
                        artifact_bytes += len(chunk)
                    files += 1
                artifacts_s += time.perf_counter() - t
            else:
                table = member.read_table()
                rows[member.stem] = rows.get(member.stem, 0) + table.num_rows
                del table
                tables_s += time.perf_counter() - t
                if member.stem == "run_metrics" and member.name.endswith(".parquet"):
                    t = time.perf_counter()  # not part of the read figures: stored bytes per column
                    meta = pq.ParquetFile(member.spool.rewind()).metadata
                    for g in range(meta.num_row_groups):
                        for c in range(meta.num_columns):
                            col = meta.row_group(g).column(c)
                            column_bytes[col.path_in_schema] = column_bytes.get(col.path_in_schema, 0) + col.total_compressed_size
                    untimed_s += time.perf_counter() - t
    seconds, cpu_s = time.perf_counter() - started - untimed_s, time.process_time() - cpu0 - untimed_s
    return {
        "column_bytes": column_bytes,
        "seconds": seconds, "cpu_s": cpu_s, "container_s": container_s, "tables_s": tables_s, "artifacts_s": artifacts_s,
        "rows": rows, "artifact_files": files, "artifact_bytes": artifact_bytes,
        "archive_bytes": os.path.getsize(plan["archive"]), "base_rss_kib": base_rss,
    }


# -- Phase: verify ------------------------------------------------------------------------------

def phase_verify(plan: dict) -> dict:
    import mlflow_archive.inspection  # noqa: F401  (import cost outside the timing)
    from mlflow_archive import verify_archive

    base_rss = _rss_now_kib()
    started, cpu0 = time.perf_counter(), time.process_time()
    report = verify_archive(plan["archive"])
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu0
    return {
        "seconds": seconds, "cpu_s": cpu_s, "rows": report.rows, "artifact_files": report.artifact_files,
        "members": report.members, "archive_bytes": os.path.getsize(plan["archive"]), "base_rss_kib": base_rss,
    }


PHASES = {"prepare": phase_prepare, "write": phase_write, "read": phase_read, "verify": phase_verify}


def child_main(phase: str, plan_file: str, result_file: str, profile: str | None) -> None:
    sys.path.insert(0, str(REPO))
    plan = json.loads(Path(plan_file).read_text())
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(PHASES[phase], plan)
        out = Path(profile) / f"{phase}-scale{plan['scale']}.prof"
        profiler.dump_stats(str(out))
        stats = pstats.Stats(profiler, stream=sys.stderr)
        print(f"\n== profile of phase {phase} (saved to {out}), top 15 by own time ==", file=sys.stderr)
        stats.sort_stats("tottime").print_stats(15)
    else:
        result = PHASES[phase](plan)
    result.update(_usage())
    Path(result_file).write_text(json.dumps(result))


# -- Parent: runs each phase in a fresh interpreter ---------------------------------------------

def run_phase(phase: str, plan: dict, workdir: Path, profile: str | None) -> dict:
    """Run one phase in a child process; the child reports its own ru_maxrss.

    The parent stays small (standard library only) on purpose: subprocess starts
    children with vfork, and at exec Linux folds the high-water RSS of the mm being
    left (the parent's) into the child's ru_maxrss. VmHWM (this mm only) is kept as
    a cross-check.
    """
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    result_file = workdir / f"{phase}.json"
    cmd = [sys.executable, __file__, "--_phase", phase, "--_plan", str(plan_file), "--_result", str(result_file)]
    if profile:
        cmd += ["--profile", profile]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = json.loads(result_file.read_text())
    result["wall_s"] = time.perf_counter() - started
    if result["peak_rss_kib"] > result["vm_hwm_kib"] + (16 << 10):
        print(f"  warning: {phase} ru_maxrss {result['peak_rss_kib'] >> 10} MiB exceeds its VmHWM "
              f"{result['vm_hwm_kib'] >> 10} MiB (inherited from the parent?)", file=sys.stderr)
    return result


def run_scale(scale: float, args, phases: tuple[str, ...]) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="mlar-bench-", dir=args.tmpdir))
    archive = Path(args.out) if args.out else workdir / "bench.mlar"
    plan = make_plan(scale, workdir, archive)
    results = {"plan": plan}
    try:
        for phase in phases:
            print(f"  scale {scale:g}: {phase} ...", file=sys.stderr, flush=True)
            results[phase] = run_phase(phase, plan, workdir, args.profile)
        check(results)
    finally:
        if args.out:
            shutil.rmtree(workdir / "artifacts", ignore_errors=True)
            (workdir / "artifacts.json").unlink(missing_ok=True)
            if not args.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        elif not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def check(results: dict) -> None:
    """Round-trip sanity (counts only, never times)."""
    plan, w = results["plan"], results.get("write")
    if not w:
        return
    expect = plan["metric_rows"]
    problems = []
    if w["metric_rows"] != expect:
        problems.append(f"writer counted {w['metric_rows']} metric rows, expected {expect}")
    if "read" in results:
        r = results["read"]
        if r["rows"].get("run_metrics") != expect:
            problems.append(f"reader decoded {r['rows'].get('run_metrics')} metric rows, expected {expect}")
        if r["artifact_bytes"] != w["artifact_raw_bytes"] or r["artifact_files"] != w["artifact_files"]:
            problems.append("reader streamed different artifact bytes or files than were written")
    if "verify" in results and results["verify"]["artifact_files"] != w["artifact_files"]:
        problems.append("verify saw a different number of artifact files")
    if problems:
        raise SystemExit("benchmark round trip failed: " + "; ".join(problems))


# -- Printing -----------------------------------------------------------------------------------

def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def report(results: dict) -> str:
    plan, w = results["plan"], results["write"]
    prep = results.get("prepare", {})
    size = w["file_bytes"]
    out = [
        (f"scale {plan['scale']:g}: {plan['runs']:,} runs in {plan['chunks']:,} chunk(s) x {len(plan['keys'])} keys x "
        f"{plan['steps']} steps = {plan['metric_rows']:,} metric rows; {w['artifact_files']:,} artifact files, "
        f"{w['artifact_raw_bytes'] / MB:,.1f} MB"),
        (f"archive: {size / MB:,.1f} MB in {w['members']:,} members "
        f"({w['metric_members']} run_metrics, {w['artifact_members']} artifact parts); "
        f"artifact data {w['artifact_raw_bytes'] / MB:,.1f} MB -> {w['artifact_member_bytes'] / MB:,.1f} MB "
        f"({w['artifact_member_bytes'] / max(w['artifact_raw_bytes'], 1):.2f})"),
        f"(prepare: artifact files generated in {prep.get('seconds', 0):.1f} s, not counted)",
        "",
    ]
    rows = []
    write_s = w["seconds"]
    rows.append(["write", f"{write_s:.2f}", f"{w['cpu_s']:.2f}", f"{size / MB / write_s:,.1f}",
                 f"{size / MB / w['cpu_s']:,.1f}", f"{w['metric_rows'] / write_s:,.0f}",
                 _mib(w["peak_rss_kib"]), _mib(w["base_rss_kib"])])
    for phase in ("read", "verify"):
        if phase in results:
            p = results[phase]
            metric_rows = plan["metric_rows"]  # read and verify decode every one of them
            rows.append([phase, f"{p['seconds']:.2f}", f"{p['cpu_s']:.2f}", f"{size / MB / p['seconds']:,.1f}",
                         f"{size / MB / p['cpu_s']:,.1f}", f"{metric_rows / p['seconds']:,.0f}",
                         _mib(p["peak_rss_kib"]), _mib(p["base_rss_kib"])])
    out.append(_table(["phase", "wall s", "cpu s", "archive MB/s", "MB per cpu s", "metric rows/s", "peak RSS MiB",
                       "RSS after imports MiB"], rows))
    out.append("(MB per cpu s: archive MB over the phase's CPU time, all threads; steadier than MB/s on a busy machine)")
    out.append("")
    lib_s = write_s - w["gen_s"]
    details = [
        ["write: synthetic row generation (in the timing above)", f"{w['gen_s']:.2f} s"],
        ["write: MB/s and rows/s without row generation",
         f"{size / MB / lib_s:,.1f} MB/s, {w['metric_rows'] / max(w['metric_s'] - w['gen_s'], 1e-9):,.0f} rows/s"],
        ["write: run_metrics sinks (encode+add) / artifact sinks",
         (f"{w['metric_s'] - w['gen_s']:.2f} s / {w['artifact_s']:.2f} s "
         f"({w['artifact_raw_bytes'] / MB / max(w['artifact_s'], 1e-9):,.1f} MB/s raw)")],
        ["archive bytes per metric point (run_metrics members / rows)",
         (f"{w['metric_member_bytes'] / max(w['metric_rows'], 1):.2f} B "
         f"({w['metric_member_bytes'] / MB:,.2f} MB / {w['metric_rows']:,} rows)")],
    ]
    if "read" in results:
        r = results["read"]
        details += [
            ["read: container (read member + sha256) / tables / artifacts",
             f"{r['container_s']:.2f} s / {r['tables_s']:.2f} s / {r['artifacts_s']:.2f} s"],
            ["read: artifact streaming, raw bytes",
             (f"{r['artifact_bytes'] / MB / max(r['artifacts_s'], 1e-9):,.1f} MB/s "
             f"({r['artifact_files']:,} files, {r['artifact_bytes'] / MB:,.1f} MB)")],
            ["run_metrics stored bytes per point, by column",
             ", ".join(f"{k} {v / max(w['metric_rows'], 1):.2f}" for k, v in r["column_bytes"].items())
             + " (column chunks; the rest is Parquet footer and page headers)"],
            ["read: table decoding", f"{r['rows']['run_metrics'] / max(r['tables_s'], 1e-9):,.0f} metric rows/s"],
        ]
    width = max(len(d[0]) for d in details)
    out += [f"{a.ljust(width)}  {b}" for a, b in details]
    return "\n".join(out)


def memory_report(small: dict, large: dict) -> str:
    rows = []
    for res in (small, large):
        p = res["plan"]
        rows.append([f"{p['scale']:g}", f"{p['metric_rows']:,}", f"{res['write']['artifact_raw_bytes'] / MB:,.0f}",
                     f"{res['write']['file_bytes'] / MB:,.0f}",
                     _mib(res["write"]["peak_rss_kib"]), _mib(res["write"]["peak_rss_kib"] - res["write"]["base_rss_kib"]),
                     _mib(res["read"]["peak_rss_kib"]), _mib(res["read"]["peak_rss_kib"] - res["read"]["base_rss_kib"])])

    def ratio(key: str, minus_base: bool) -> str:
        def value(res):
            v = res[key]["peak_rss_kib"]
            return v - res[key]["base_rss_kib"] if minus_base else v
        return f"{value(large) / max(value(small), 1):.2f}x"

    rows.append(["ratio 4x/1x", f"{large['plan']['metric_rows'] / small['plan']['metric_rows']:.2f}x",
                 "", f"{large['write']['file_bytes'] / small['write']['file_bytes']:.2f}x",
                 ratio("write", False), ratio("write", True), ratio("read", False), ratio("read", True)])
    return _table(["scale", "metric rows", "artifact MB", "archive MB", "write peak RSS MiB",
                   "write above imports", "read peak RSS MiB", "read above imports"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies runs (2,000) and artifact bytes (1 GiB); 0.01 for a quick run")
    parser.add_argument("--out", help="keep the archive at this path (default: a temporary file, deleted)")
    parser.add_argument("--memory-check", action="store_true",
                        help="run write+read at SCALE and 4xSCALE and compare peak RSS")
    parser.add_argument("--tmpdir", help="where the artifact files and the archive go (default: the system temp dir)")
    parser.add_argument("--profile", metavar="DIR", help="run each phase under cProfile, save .prof files in DIR")
    parser.add_argument("--keep-workdir", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_phase", choices=list(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--_plan", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._phase:
        child_main(args._phase, args._plan, args._result, args.profile)
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    print(f"mlflow-archive container benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start)", flush=True)
    if args.memory_check:
        if args.out:
            parser.error("--out cannot be combined with --memory-check")
        small = run_scale(args.scale, args, ("prepare", "write", "read"))
        large = run_scale(args.scale * 4, args, ("prepare", "write", "read"))
        for res in (small, large):
            print()
            print(report(res))
        print()
        print("memory check: peak RSS of write and read at two scales (each phase in its own process)")
        print(memory_report(small, large))
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    results = run_scale(args.scale, args, ("prepare", "write", "read", "verify"))
    print()
    print(report(results))
    print(f"load average {os.getloadavg()[0]:.2f} at the end (figures are noisy when other work shares the CPUs)")
    if args.out:
        print(f"\narchive kept at {args.out}")


if __name__ == "__main__":
    main()
