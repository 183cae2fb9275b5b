"""Export and import over REST with few requests per run: histories in bulk, through a proxy that adds latency.

The data (tests/rest_data.py) is built once on ``scratch_server``; exports go through a ``FlakyProxy`` that
delays every request, or answers 404 for the bulk history endpoint as a server without it would. The round
trip lands in the shared ``dest_server`` under a name of its own and is compared with the source field by
field (``compare.compare_servers``); the long histories are compared with the source's paged reads.
An import through a proxy that records its requests is checked request by request, per run.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from compare import compare_servers
from flaky_proxy import FlakyProxy
from mlflow import MlflowClient
from rest_data import ODD_VALUES, archive_histories, build_rest_data, bulk_requests, history_requests, metric_members
from test_tracking_roundtrip import api_export, api_import

from mlflow_archive.context import PROVENANCE_PREFIX, ExportOptions
from mlflow_archive.endpoints import BULK_HISTORY, TrackingSource

LATENCY = 0.02  # seconds added to each request's round trip
ARTIFACT_PUT = "PUT /api/2.0/mlflow-artifacts/artifacts/"
PER_RUN = ("POST /api/2.0/mlflow/runs/create", "POST /api/2.0/mlflow/runs/log-batch", "POST /api/2.0/mlflow/runs/update", ARTIFACT_PUT)
IMPORT_REQUESTS = 3 + 2 * 2  # per import, whatever the number of runs: 3 checks, then each of 2 experiments looked up and created
# MLflow's client asks this once per client since 3.18 (what the server supports); not a request of ours.
CLIENT_PROBES = ("GET /api/3.0/mlflow/server-info",)


@pytest.fixture(scope="module")
def rest_data(scratch_server):
    import uuid

    return build_rest_data(scratch_server.url, f"rest-{uuid.uuid4().hex[:8]}-")


@pytest.fixture(scope="module")
def bulk_export(rest_data, scratch_server, tmp_path_factory):
    """Both experiments exported through a proxy that records the requests."""
    archive = tmp_path_factory.mktemp("rest") / "bulk.mlar"
    with FlakyProxy(scratch_server.url) as proxy:
        api_export(archive, proxy.url, experiments=f"{rest_data.short_name},{rest_data.long_name}")
    return archive, proxy.requests


def test_round_trip_through_latency(rest_data, scratch_server, dest_server, tmp_path):
    archive = tmp_path / "short.mlar"
    with FlakyProxy(scratch_server.url, latency=LATENCY) as proxy:
        api_export(archive, proxy.url, experiments=rest_data.short_name)
    assert history_requests(proxy.requests) == []  # every history came in bulk
    assert len(bulk_requests(proxy.requests)) == 6  # one per key: a, b, c, nan, odd, tie
    renamed = rest_data.short_name + "-copy"
    with FlakyProxy(dest_server.url, latency=LATENCY) as dest_proxy:
        api_import(archive, dest_proxy.url, experiment_rename={rest_data.short_name: renamed})
    result = compare_servers(scratch_server.url, dest_server.url, experiment_names=[rest_data.short_name], rename={rest_data.short_name: renamed})
    assert result.compared_runs == 4


def test_history_past_the_bulk_limit(rest_data, scratch_server, bulk_export):
    archive, requests = bulk_export
    # Only the history past the limit is read page by page (2 pages of 25,000 points).
    assert history_requests(requests) == [(rest_data.long_run, "long")] * 2
    # "long": the long run alone (a full answer of one run: read paged), then the dense and the small run
    # together (estimated at 3 points, the answer is full: the run cut off is asked again).
    assert 6 + 2 <= len(bulk_requests(requests)) <= 6 + 3
    got = archive_histories(archive)
    client = MlflowClient(tracking_uri=scratch_server.url)
    for run_id in (rest_data.long_run, rest_data.dense_run, rest_data.small_run):
        source = sorted(((m.value, m.timestamp, m.step) for m in client.get_metric_history(run_id, "long")), key=lambda p: (p[2], p[1]))
        assert got[(run_id, "long")] == source


def test_nan_and_infinity_through_the_bulk_path(rest_data, scratch_server):
    """NaN and ±infinity come through the bulk JSON as through the paged call (a SQL store keeps ±infinity
    as ±max float, and both calls give that back)."""
    source = TrackingSource(scratch_server.url)
    for key, first in (("odd", ODD_VALUES[0]), ("nan", float("nan"))):
        histories, paged = source.bulk_metric_histories(rest_data.short_runs, key)
        assert paged == []
        for run_id in rest_data.short_runs:
            expected = [(repr(m.value), m.timestamp, m.step) for page in source.metric_history(run_id, key) for m in page]
            assert [(repr(m.value), m.timestamp, m.step) for m in histories[run_id]] == expected
            assert expected[0][0] == repr(first)


def test_server_without_bulk_endpoint_exports_everything(rest_data, scratch_server, bulk_export, tmp_path):
    bulk_archive, _ = bulk_export
    plain_archive = tmp_path / "plain.mlar"
    no_bulk = lambda n, method, path: 404 if path.startswith(BULK_HISTORY) else None  # noqa: E731
    with FlakyProxy(scratch_server.url, no_bulk) as proxy:
        api_export(plain_archive, proxy.url, experiments=f"{rest_data.short_name},{rest_data.long_name}")
    # Asked by the first requests in flight (one per worker), then never again.
    assert 1 <= len(bulk_requests(proxy.requests)) <= ExportOptions().workers
    # One paged read per (run, key): a, b, c, nan, odd, tie for 4 runs, "long" for 3 (2 pages for the long one).
    assert len(history_requests(proxy.requests)) == 6 * 4 + 3 + 1
    # The same metric rows, byte for byte, whichever way they were read.
    assert metric_members(plain_archive) == metric_members(bulk_archive)


def _endpoint(method: str, path: str) -> str:
    path = path.split("?")[0]
    return ARTIFACT_PUT if f"{method} {path}".startswith(ARTIFACT_PUT) else f"{method} {path}"


def _files(client: MlflowClient, run_id: str, path: str | None = None) -> int:
    return sum(_files(client, run_id, f.path) if f.is_dir else 1 for f in client.list_artifacts(run_id, path))


def test_import_requests_per_run(rest_data, scratch_server, module_dest_server, bulk_export):
    """Per run, an import makes one create, its params, tags and points in full log_batch calls (the last one also
    carries the complete marker), one upload per file and one update of its end: counted through the proxy."""
    archive, _ = bulk_export
    with FlakyProxy(module_dest_server.url) as proxy:  # a destination of its own: the short runs are imported elsewhere too
        api_import(archive, proxy.url)
    counts = Counter(_endpoint(method, path) for method, path in proxy.requests)
    client = MlflowClient(tracking_uri=scratch_server.url)
    runs = [client.get_run(r) for r in rest_data.short_runs + [rest_data.long_run, rest_data.dense_run, rest_data.small_run]]
    points = Counter()
    for (run_id, _), history in archive_histories(archive).items():
        points[run_id] += len(history)
    entities = [  # what the run's log_batch calls carry, the complete marker included
        len(r.data.params) + sum(not k.startswith(PROVENANCE_PREFIX) for k in r.data.tags) + points[r.info.run_id] + 1 for r in runs
    ]
    assert counts["POST /api/2.0/mlflow/runs/create"] == len(runs)
    assert counts["POST /api/2.0/mlflow/runs/log-batch"] == sum(math.ceil(n / 1000) for n in entities)
    assert counts["POST /api/2.0/mlflow/runs/update"] == len(runs)
    assert counts[ARTIFACT_PUT] == sum(_files(client, r.info.run_id) for r in runs) > 0
    assert counts["POST /api/2.0/mlflow/runs/set-tag"] == 0
    assert sum(n for endpoint, n in counts.items() if endpoint not in PER_RUN + CLIENT_PROBES) <= IMPORT_REQUESTS, counts
    assert all(counts[probe] <= 1 for probe in CLIENT_PROBES), counts
    result = compare_servers(scratch_server.url, module_dest_server.url, experiment_names=[rest_data.short_name, rest_data.long_name])
    assert result.compared_runs == len(runs)
