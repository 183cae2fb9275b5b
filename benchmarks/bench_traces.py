#!/usr/bin/env python3
"""Traces: export and import between two real tracking servers, against the servers' own limits.

    python benchmarks/bench_traces.py --scale small            # 500 traces x 10 spans x 2 KB
    python benchmarks/bench_traces.py --scale large --workers 4  # 10,000 traces x 10 spans x 2 KB
    python benchmarks/bench_traces.py --traces 2000 --spans 50 --payload 512

What it does, in this order:

1. starts a source and a destination ``mlflow server`` (SQLite, proxied artifacts, one worker),
   as ``bench_tracking.py`` does;
2. fills the source: every trace is a root span with a chain of children, each span carrying
   ``--payload`` bytes of inputs and of outputs, logged the way MLflow's client logs them:
   spans through ``log_spans`` (OTLP, 10 traces per call), then ``start_trace``;
3. server limit, read: every trace ID through paged ``search_traces``, then every trace with its
   spans through ``batch_get_traces`` (10 per call, MLflow's own batch size), from ``--workers`` threads;
4. ``export_archive`` source -> archive, and ``import_archive`` archive -> the empty destination,
   each in a child process (peak RSS is that process's high-water mark);
5. server limit, write: the same spans, under new trace IDs, logged into a fresh experiment
   of the destination through ``log_spans`` + ``start_trace`` from ``--workers`` threads.

Ratios are ours / the server's limit for the same traces and spans (1.0: as fast as the raw
API). Nothing here asserts on times.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tracking  # noqa: E402  (servers, child processes, table formatting)

SCALES = {"small": (500, 10, 2048), "large": (10_000, 10, 2048)}
TRACES_PER_CALL = 10
WORDS = "agent tool call answer question context retrieve document model token cache latency result".split()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_trace(experiment_id: str, index: int, spans: int, payload: int, seed: int):
    """One trace: (TraceInfo, [Span]) with a fresh trace ID and deterministic payloads."""
    from mlflow.entities import Span, TraceInfo, TraceLocation, TraceState

    rng = random.Random(seed * 1_000_003 + index)
    trace_hex = uuid.UUID(int=rng.getrandbits(128)).hex
    trace_id = "tr-" + trace_hex
    start_ns = 1_700_000_000_000_000_000 + index * 1_000_000_000

    def text() -> str:
        words = []
        while sum(len(w) + 1 for w in words) < payload // 2:
            words.append(rng.choice(WORDS) + str(rng.randrange(1000)))
        return " ".join(words)

    span_ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(spans)]
    out = []
    for i, span_id in enumerate(span_ids):
        out.append(
            Span.from_dict(
                {
                    "trace_id": _b64(bytes.fromhex(trace_hex)),
                    "span_id": _b64(span_id),
                    "parent_span_id": _b64(span_ids[i - 1]) if i else None,
                    "name": f"step-{i}",
                    "start_time_unix_nano": start_ns + i * 1_000_000,
                    "end_time_unix_nano": start_ns + (2 * spans - i) * 1_000_000,
                    "events": [],
                    "status": {"code": "STATUS_CODE_OK", "message": ""},
                    "attributes": {
                        "mlflow.traceRequestId": json.dumps(trace_id),
                        "mlflow.spanType": json.dumps("CHAIN" if i == 0 else "TOOL"),
                        "mlflow.spanInputs": json.dumps({"query": text()}),
                        "mlflow.spanOutputs": json.dumps({"answer": text()}),
                    },
                }
            )
        )
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=start_ns // 1_000_000,
        state=TraceState.OK,
        request_preview='{"query": "..."}',
        response_preview='{"answer": "..."}',
        execution_duration=2 * spans,
        trace_metadata={"mlflow.trace_schema.version": "3"},
        tags={"mlflow.traceName": "step-0", "bench": "traces"},
    )
    return info, out


def log_traces(uri: str, experiment_id: str, count: int, spans: int, payload: int, seed: int, workers: int) -> float:
    """Log ``count`` traces as MLflow's client does (spans, then the trace info); returns seconds."""
    from mlflow.tracing.client import TracingClient

    client = TracingClient(uri)
    groups = [range(s, min(s + TRACES_PER_CALL, count)) for s in range(0, count, TRACES_PER_CALL)]

    def one(group) -> None:
        traces = [make_trace(experiment_id, i, spans, payload, seed) for i in group]
        client.log_spans(experiment_id, [s for _, trace_spans in traces for s in trace_spans])
        for info, _ in traces:
            client.start_trace(info)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, groups))
    return time.perf_counter() - started


def read_traces(uri: str, experiment_id: str, workers: int) -> tuple[float, int, int]:
    """Every trace with its spans through search_traces + batch_get_traces; returns (seconds, traces, spans)."""
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(uri)
    started = time.perf_counter()
    ids, token = [], None
    while True:
        infos, token = store.search_traces(experiment_ids=[experiment_id], max_results=500, page_token=token)
        ids += [i.trace_id for i in infos]
        if not token:
            break
    groups = [ids[s : s + TRACES_PER_CALL] for s in range(0, len(ids), TRACES_PER_CALL)]
    with ThreadPoolExecutor(workers) as pool:
        spans = sum(len(t.data.spans) for traces in pool.map(store.batch_get_traces, groups) for t in traces)
    return time.perf_counter() - started, len(ids), spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--traces", type=int, help="traces (overrides --scale)")
    parser.add_argument("--spans", type=int, help="spans per trace (overrides --scale)")
    parser.add_argument("--payload", type=int, help="bytes of inputs + outputs per span (overrides --scale)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    count, spans, payload = SCALES[args.scale]
    count, spans, payload = args.traces or count, args.spans or spans, args.payload or payload
    total_spans = count * spans
    print(f"workload: {count:,} traces x {spans} spans x {payload:,} B payload = {total_spans:,} spans; workers {args.workers}")

    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp_name:
        tmp = Path(tmp_name)
        source = bench_tracking.Server(tmp / "source", "source").start()
        dest = bench_tracking.Server(tmp / "dest", "dest").start()
        try:
            experiment = MlflowClient(source.url).create_experiment("bench-traces")
            fill = log_traces(source.url, experiment, count, spans, payload, args.seed, args.workers)
            print(f"fill: {fill:.1f} s")
            read_seconds, read_traces_n, read_spans = read_traces(source.url, experiment, args.workers)
            assert (read_traces_n, read_spans) == (count, total_spans), (read_traces_n, read_spans)
            archive = tmp / "traces.mlar"
            exported = bench_tracking.run_child("export", source.url, archive, args.workers, tmp, None)
            imported = bench_tracking.run_child("import", dest.url, archive, args.workers, tmp, None)
            for phase in (exported, imported):
                if not phase["ok"]:
                    print("\n".join(phase["lines"]), file=sys.stderr)
                    return 1
            target = MlflowClient(dest.url).create_experiment("bench-traces-limit")
            write_seconds = log_traces(dest.url, target, count, spans, payload, args.seed + 1, args.workers)
        finally:
            source.stop()
            dest.stop()

    archive_bytes = exported["archive_bytes"]
    rows = [
        ["server read (search + batch_get_traces)", read_seconds, "-", "-"],
        ["export (mlflow archive)", exported["seconds"], exported["peak_rss_kb"] / 1024, read_seconds / exported["seconds"]],
        ["server write (log_spans + start_trace)", write_seconds, "-", "-"],
        ["import (mlflow archive)", imported["seconds"], imported["peak_rss_kb"] / 1024, write_seconds / imported["seconds"]],
    ]
    table = [
        [name, f"{seconds:,.1f}", f"{count / seconds:,.0f}", f"{total_spans / seconds:,.0f}",
         rss if rss == "-" else f"{rss:,.0f}", ratio if ratio == "-" else f"{ratio:.2f}"]
        for name, seconds, rss, ratio in rows
    ]
    print(bench_tracking.table(["phase", "seconds", "traces/s", "spans/s", "peak RSS MiB", "ratio to server"], table))
    print(f"archive: {archive_bytes:,} bytes, {archive_bytes / total_spans:,.1f} bytes per span "
          f"({payload:,} B payload per span before compression)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
