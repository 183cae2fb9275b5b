"""Data for the REST request-count tests (test_rest_requests.py): histories around the bulk endpoint's limits."""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq

from mlflow import MlflowClient
from mlflow.entities import Metric

from mlflow_archive.endpoints import BULK_HISTORY, BULK_HISTORY_POINTS

HISTORY = "/api/2.0/mlflow/metrics/get-history"
ODD_VALUES = [float("nan"), float("inf"), float("-inf"), 1.5, -0.0, 1e308]


@dataclass
class RestData:
    short_name: str  # experiment of 4 runs with short histories and artifacts
    short_runs: list[str]
    long_name: str  # experiment of 3 runs with histories around the bulk limit under the key "long"
    long_run: str  # more points than one bulk answer holds
    dense_run: str  # nearly a bulk answer's worth, all at step 0 (the estimate from its latest step says 1)
    small_run: str  # 2 points


def _log(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def build_rest_data(tracking_uri: str, prefix: str) -> RestData:
    """Short histories under several keys (NaN and ±infinity in one, NaN in another, ties in a third) with
    artifacts in a tree; and, in an experiment of their own, histories past and near the bulk limit."""
    client = MlflowClient(tracking_uri=tracking_uri)
    t0 = int(time.time() * 1000) - 1_000_000
    short_id, long_id = client.create_experiment(prefix + "short"), client.create_experiment(prefix + "long")
    runs = []
    for i in range(4):
        run_id = client.create_run(short_id, start_time=t0 + i, run_name=f"short {i}", tags={"i": str(i)}).info.run_id
        client.log_param(run_id, "i", str(i))
        short = [Metric(k, float(step * (i + 1)), t0 + step, step) for k in ("a", "b", "c") for step in range(5)]
        short += [Metric("tie", float(v), t0, 0) for v in (3, 1, 2)]  # same step and timestamp: the order must hold
        short += [Metric("odd", v, t0 + j, j) for j, v in enumerate(ODD_VALUES)]
        short += [Metric("nan", v, t0 + j, j) for j, v in enumerate([float("nan"), 2.0])]
        _log(client, run_id, short)
        client.log_text(run_id, f"run {i}\n", "top.txt")
        client.log_text(run_id, "deep\n", f"a/b/c/deep-{i}.txt")
        runs.append(run_id)
    long_runs = [client.create_run(long_id, start_time=t0 + i, run_name=f"long {i}").info.run_id for i in range(3)]
    long_run, dense_run, small_run = long_runs
    _log(client, long_run, [Metric("long", float(s) / 7, t0 + s, s) for s in range(BULK_HISTORY_POINTS + 1)])
    _log(client, dense_run, [Metric("long", float(j), t0 + j, 0) for j in range(BULK_HISTORY_POINTS - 1)])
    _log(client, small_run, [Metric("long", 1.0, t0 + j, j) for j in range(2)])
    for run_id in runs + long_runs:
        client.set_terminated(run_id, "FINISHED", end_time=t0 + 10_000)
    return RestData(prefix + "short", runs, prefix + "long", long_run, dense_run, small_run)


def history_requests(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(run, key) of each per-key history request (not the bulk ones) among a proxy's recorded requests."""
    found = []
    for _, path in requests:
        if path.split("?")[0] == HISTORY:
            query = parse_qs(urlsplit(path).query)
            found.append((query["run_uuid"][0], query["metric_key"][0]))
    return sorted(found)


def bulk_requests(requests: list[tuple[str, str]]) -> list[str]:
    return [path for _, path in requests if path.startswith(BULK_HISTORY)]


def metric_members(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if "run_metrics" in m.name}


def archive_histories(archive) -> dict[tuple[str, str], list[tuple]]:
    """(run, key) -> [(value, timestamp, step), ...] as the archive holds them, in its order."""
    out: dict[tuple[str, str], list[tuple]] = {}
    for data in metric_members(archive).values():
        for row in pq.read_table(io.BytesIO(data)).to_pylist():
            out.setdefault((row["run_id"], row["key"]), []).append((row["value"], row["timestamp"], row["step"]))
    return out
