#!/usr/bin/env python3
"""Fill a tracking server with a reproducible, realistic workload, through ``MlflowClient``.

    python benchmarks/workload.py http://127.0.0.1:5000 --scale small
    python benchmarks/workload.py http://127.0.0.1:5000 --scale medium --threads 4

or from Python::

    from benchmarks.workload import fill          # or: sys.path.insert(0, "benchmarks"); from workload import fill
    result = fill("http://127.0.0.1:5000", scale="small")
    print(result.metric_points)

Scales (runs are spread round-robin over the experiments):

=======  ===========  =====  =======================  ======  ==========================
scale    experiments  runs   metrics x steps per run  params  artifacts per run
=======  ===========  =====  =======================  ======  ==========================
small    2            20     10 x 100                 20      3 files of 1-50 KB
medium   20           500    10 x 500                 20      3 files of 1-50 KB
large    50           2000   10 x 500                 20      3 files of 1-50 KB
=======  ===========  =====  =======================  ======  ==========================

Each run gets: a name, a start time (one minute apart), 3 tags, 20 params, every
metric point logged with ``log_batch`` in full batches of 1000 points (points in
step order, all keys of a step together, as a training loop flushing its buffer
would send them), 3 artifact files (``config/params.yaml``: text; ``eval/predictions.csv``:
numbers as text; ``model/weights.bin``: random bytes, incompressible), then status
FINISHED with an end time.

Metric values (``values="mixed"``, the default) are what training code logs:
``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``, ``f1`` and ``grad_norm`` are noisy
curves computed in float32 (what ``tensor.item()`` returns), ``learning_rate`` is a
float64 cosine schedule, ``throughput`` is noisy float64, ``epoch`` and ``gpu_memory``
are integer-valued. ``values="float64"`` makes every value a random full-precision
double (the worst case for compression). All points of a step share one timestamp,
steps are 1-3 s apart. Everything is derived from ``seed`` and the run's index, so
``run_metrics(spec, index)`` gives back exactly the points that ``fill`` logged.

Runs are written by ``threads`` client threads in parallel (one run per task).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# No "View run ... at ..." lines on stdout, whatever client call is used.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

METRICS_PER_CALL = 1000  # log_batch's limit for metrics
BASE_START_MS = 1_750_000_000_000  # 2025-06-15, a fixed origin keeps runs reproducible
KEYS = (
    "loss", "val_loss", "accuracy", "val_accuracy", "f1",
    "grad_norm", "learning_rate", "throughput", "epoch", "gpu_memory",
)


@dataclass(frozen=True)
class Scale:
    name: str
    experiments: int
    runs: int
    metrics: int
    steps: int
    params: int = 20
    artifacts: int = 3
    artifact_min: int = 1_000
    artifact_max: int = 50_000

    @property
    def points_per_run(self) -> int:
        return self.metrics * self.steps

    @property
    def metric_points(self) -> int:
        return self.runs * self.points_per_run

    def keys(self) -> list[str]:
        return [KEYS[i] if i < len(KEYS) else f"metric_{i:03d}" for i in range(self.metrics)]


SCALES = {
    "small": Scale("small", experiments=2, runs=20, metrics=10, steps=100),
    "medium": Scale("medium", experiments=20, runs=500, metrics=10, steps=500),
    "large": Scale("large", experiments=50, runs=2000, metrics=10, steps=500),
}


@dataclass
class FillResult:
    scale: str
    tracking_uri: str
    experiment_ids: list[str]
    run_ids: list[str]
    experiments: int = 0
    runs: int = 0
    metric_points: int = 0
    params: int = 0
    tags: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    log_batch_calls: int = 0
    seconds: float = 0.0
    threads: int = 1

    def line(self) -> str:
        return (
            f"{self.runs} runs in {self.experiments} experiments, {self.metric_points} metric points, "
            f"{self.params} params, {self.artifact_files} artifact files ({self.artifact_bytes / 1e6:.1f} MB), "
            f"{self.log_batch_calls} log_batch calls, {self.seconds:.1f} s with {self.threads} threads "
            f"({self.metric_points / max(self.seconds, 1e-9):,.0f} points/s)"
        )


def get_scale(scale: str | Scale) -> Scale:
    if isinstance(scale, Scale):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}") from None


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def run_start_ms(index: int) -> int:
    return BASE_START_MS + index * 60_000


def metric_arrays(spec: Scale, index: int, seed: int = 0, values: str = "mixed") -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Run ``index``'s points as arrays: keys, then values[key, step], timestamps[step], steps[step]."""
    rng = _rng(seed, index, 1)
    n = spec.steps
    steps = np.arange(n, dtype=np.int64)
    timestamps = run_start_ms(index) + 5_000 + np.cumsum(rng.integers(1_000, 3_000, n)).astype(np.int64)
    keys = spec.keys()
    out = np.empty((len(keys), n), dtype=np.float64)
    t = steps / max(n - 1, 1)
    decay = rng.uniform(3.0, 8.0)
    for k, key in enumerate(keys):
        noise = rng.standard_normal(n)
        if values == "float64":
            out[k] = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
        elif key in ("loss", "val_loss"):
            out[k] = (2.5 * np.exp(-decay * t) + 0.1 + 0.03 * noise).astype(np.float32)
        elif key in ("accuracy", "val_accuracy", "f1"):
            out[k] = np.clip(0.95 - 0.85 * np.exp(-decay * t) + 0.01 * noise, 0, 1).astype(np.float32)
        elif key == "grad_norm":
            out[k] = np.exp(0.5 * noise - 2 * t).astype(np.float32)
        elif key == "learning_rate":
            out[k] = 3e-4 * 0.5 * (1 + np.cos(math.pi * t))
        elif key == "throughput":
            out[k] = 1200.0 + 35.0 * noise
        elif key == "epoch":
            out[k] = np.floor(t * 10).clip(max=9)
        elif key == "gpu_memory":
            out[k] = 10_240 + rng.integers(-64, 64, n)
        else:
            out[k] = (rng.standard_normal() + 0.1 * noise).astype(np.float32)
    return keys, out, timestamps, steps


def run_metrics(spec: Scale, index: int, seed: int = 0, values: str = "mixed") -> list:
    """Run ``index``'s metric points as ``Metric`` objects, in the order ``fill`` logs them (step by step)."""
    from mlflow.entities import Metric

    keys, vals, timestamps, steps = metric_arrays(spec, index, seed, values)
    vals_t = vals.T.tolist()
    ts, st = timestamps.tolist(), steps.tolist()
    return [Metric(key, row[k], ts[s], st[s]) for s, row in enumerate(vals_t) for k, key in enumerate(keys)]


def batches(items: list, size: int = METRICS_PER_CALL):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_params(spec: Scale, index: int, seed: int = 0) -> dict[str, str]:
    rng = _rng(seed, index, 2)
    fixed = {
        "optimizer": ["adam", "adamw", "sgd"][index % 3],
        "learning_rate": f"{float(rng.choice([1e-4, 3e-4, 1e-3])):g}",
        "batch_size": str(int(rng.choice([32, 64, 128, 256]))),
        "epochs": "10",
        "model": ["resnet18", "resnet50", "vit_b16", "bert-base"][index % 4],
        "dropout": f"{rng.uniform(0, 0.5):.3f}",
        "seed": str(index),
    }
    params = dict(list(fixed.items())[: spec.params])
    for i in range(len(params), spec.params):
        params[f"param_{i:02d}"] = f"{rng.uniform(0, 100):.6g}"
    return params


def run_tags(index: int) -> dict[str, str]:
    return {
        "mlflow.source.name": "train.py",
        "mlflow.source.type": "LOCAL",
        "team": ["vision", "nlp", "ranking"][index % 3],
    }


def write_artifacts(spec: Scale, index: int, directory: Path, seed: int = 0) -> tuple[int, int]:
    """Write run ``index``'s artifact files under ``directory``; returns (files, bytes)."""
    rng = _rng(seed, index, 3)
    sizes = rng.integers(spec.artifact_min, spec.artifact_max + 1, spec.artifacts)
    total = 0
    for i, size in enumerate(sizes.tolist()):
        kind = i % 3
        if kind == 0:
            path = directory / "config" / ("params.yaml" if i == 0 else f"params-{i}.yaml")
            lines, n = [], 0
            while n < size:
                line = f"layer_{len(lines):04d}: {{units: {int(rng.integers(16, 1024))}, act: relu, dropout: {rng.uniform():.4f}}}\n"
                lines.append(line)
                n += len(line)
            data = "".join(lines).encode()[:size]
        elif kind == 1:
            path = directory / "eval" / ("predictions.csv" if i == 1 else f"predictions-{i}.csv")
            rows = max(1, size // 30)
            arr = rng.uniform(size=(rows, 2))
            data = ("id,label,score\n" + "".join(f"{r},{int(a > 0.5)},{b:.6f}\n" for r, (a, b) in enumerate(arr.tolist()))).encode()[:size]
        else:
            path = directory / "model" / ("weights.bin" if i == 2 else f"weights-{i}.bin")
            data = rng.bytes(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return len(sizes), total


def _experiment(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name, tags={"bench.workload": "1"})


def fill(
    tracking_uri: str,
    scale: str | Scale = "small",
    threads: int = 4,
    seed: int = 0,
    values: str = "mixed",
    prefix: str = "bench",
    progress: bool = False,
) -> FillResult:
    """Log the workload of ``scale`` into the server at ``tracking_uri``; returns what was logged."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunStatus, RunTag

    spec = get_scale(scale)
    client = MlflowClient(tracking_uri=tracking_uri)
    store = client._tracking_client.store
    started = time.perf_counter()
    experiment_ids = [_experiment(client, f"{prefix}-{spec.name}-exp-{i:03d}") for i in range(spec.experiments)]
    result = FillResult(spec.name, tracking_uri, experiment_ids, [None] * spec.runs, experiments=spec.experiments, threads=threads)
    lock = threading.Lock()
    scratch = Path(tempfile.mkdtemp(prefix="bench-workload-"))

    def one(index: int) -> None:
        start = run_start_ms(index)
        run = client.create_run(
            experiment_ids[index % spec.experiments], start_time=start, tags=run_tags(index), run_name=f"run-{index:05d}"
        )
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in run_params(spec, index, seed).items()]
        tags = [RunTag("epochs_planned", "10")]
        calls = 0
        for part in batches(params, 100):
            client.log_batch(run_id, params=part, tags=tags)
            tags = []
            calls += 1
        metrics = run_metrics(spec, index, seed, values)
        for part in batches(metrics):
            client.log_batch(run_id, metrics=part)
            calls += 1
        files = nbytes = 0
        if spec.artifacts:
            local = scratch / str(index)
            local.mkdir()
            files, nbytes = write_artifacts(spec, index, local, seed)
            client.log_artifacts(run_id, str(local))
            shutil.rmtree(local, ignore_errors=True)
        end = int(max(m.timestamp for m in metrics[-spec.metrics :])) + 1_000 if metrics else start + 1_000
        store.update_run_info(run_id, RunStatus.FINISHED, end, None)
        with lock:
            result.run_ids[index] = run_id
            result.runs += 1
            result.metric_points += len(metrics)
            result.params += len(params)
            result.tags += len(run_tags(index)) + 1
            result.artifact_files += files
            result.artifact_bytes += nbytes
            result.log_batch_calls += calls
            if progress and result.runs % max(1, spec.runs // 20) == 0:
                elapsed = time.perf_counter() - started
                print(f"  filled {result.runs}/{spec.runs} runs, {elapsed:.0f} s", file=sys.stderr, flush=True)

    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="fill") as pool:
            for future in [pool.submit(one, i) for i in range(spec.runs)]:
                future.result()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tracking_uri", help="server to fill, e.g. http://127.0.0.1:5000")
    parser.add_argument("--scale", choices=list(SCALES), default="small")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--values", choices=["mixed", "float64"], default="mixed")
    parser.add_argument("--prefix", default="bench", help="experiment name prefix (default bench)")
    args = parser.parse_args(argv)
    spec = get_scale(args.scale)
    print(f"scale {spec.name}: {asdict(spec)}", file=sys.stderr)
    result = fill(args.tracking_uri, spec, args.threads, args.seed, args.values, args.prefix, progress=True)
    print(result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
