"""Evaluation datasets for the round-trip tests: building them on a server, and comparing two servers' copies.

Everything is built through MLflow's public API (``mlflow.genai.datasets``, ``MlflowClient``
traces), and read back the same way, so the comparison sees what a user sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import mlflow
import mlflow.genai.datasets as genai_datasets
from mlflow import MlflowClient

from models_data import using_server

PROVENANCE_PREFIX = "mlflow_archive."
BIG_RECORDS = 5000


@dataclass
class DatasetsData:
    uri: str  # the source server
    prefix: str
    experiments: dict[str, str]  # name -> source experiment ID
    datasets: dict[str, str]  # name -> source dataset ID
    trace_ids: list[str] = field(default_factory=list)

    def name(self, short: str) -> str:
        return self.prefix + short


def _nested_batches() -> list[list[dict]]:
    """Three merges (three creation times): nested JSON inputs and expectations, outputs of every kind."""
    return [
        [
            {
                "inputs": {"question": f"q{i}", "context": {"docs": [{"id": i, "tags": ["a", "b"]}, {"id": None}], "depth": {"x": {"y": i}}}},
                "expectations": {"answer": {"text": f"a{i}", "facts": [i, i + 0.5, True, None]}, "score": 0.9},
                "outputs": {"text": f"out{i}", "tokens": [1, 2, 3]},
                "tags": {"split": "train", "ü": "実"},
            }
            for i in range(4)
        ],
        [
            {"inputs": {"question": "no expectations", "context": {"docs": [], "depth": {}}}, "outputs": {"text": "x", "tokens": []}},
            {"inputs": {"question": "only inputs", "context": {"docs": [{"id": 9}], "depth": {"x": None}}}},
        ],
        [
            {
                "inputs": {"question": "last", "context": {"docs": [{"id": 10}], "depth": {"x": {"y": -1}}}},
                "expectations": {"answer": {"text": "ünïcode ✓", "facts": []}, "score": 0.0},
                "source": {"source_type": "DOCUMENT", "source_data": {"source_id": "doc-7", "page": 3}},
            }
        ],
    ]


def _make_traces(client: MlflowClient, experiment_id: str, count: int) -> list[str]:
    trace_ids = []
    for i in range(count):
        root = client.start_trace(f"qa-{i}", inputs={"question": f"trace question {i}"}, experiment_id=experiment_id)
        client.end_trace(root.trace_id, outputs={"answer": f"trace answer {i}"})
        trace_ids.append(root.trace_id)
    mlflow.flush_trace_async_logging()
    for i, trace_id in enumerate(trace_ids):
        mlflow.log_expectation(trace_id=trace_id, name="expected_answer", value={"text": f"expected {i}"})
    return trace_ids


def build_datasets(uri: str, prefix: str) -> DatasetsData:
    """On the server at ``uri``: experiments ``a`` and ``b``; datasets ``nested`` (linked to both), ``traces``
    (records made from traces of ``a``) and ``big`` (BIG_RECORDS records, linked to ``b``)."""
    client = MlflowClient(uri)
    data = DatasetsData(uri, prefix, {}, {})
    for short in ("a", "b"):
        data.experiments[prefix + short] = client.create_experiment(prefix + short)
    a, b = data.experiments[prefix + "a"], data.experiments[prefix + "b"]
    with using_server(uri):
        nested = genai_datasets.create_dataset(prefix + "nested", experiment_id=[a, b], tags={"purpose": "nested", "owner": "qa team"})
        for batch in _nested_batches():
            nested.merge_records(batch)
        data.trace_ids = _make_traces(client, a, 3)
        traces = genai_datasets.create_dataset(prefix + "traces", experiment_id=a, tags={"purpose": "traces"})
        traces.merge_records([client.get_trace(t) for t in data.trace_ids])
        big = genai_datasets.create_dataset(prefix + "big", experiment_id=b)
        big.merge_records([{"inputs": {"n": i}, "expectations": {"double": 2 * i}} for i in range(BIG_RECORDS)])
    for dataset in (nested, traces, big):
        data.datasets[dataset.name] = dataset.dataset_id
    return data


# -- Reading and comparing ----------------------------------------------------------------------

def datasets_named(uri: str, name: str) -> list:
    return list(MlflowClient(uri).search_datasets(filter_string=f"name = '{name}'", max_results=1000))


def only_dataset(uri: str, name: str):
    found = datasets_named(uri, name)
    assert len(found) == 1, f"{len(found)} datasets named {name!r} on {uri}"
    return found[0]


def records(uri: str, dataset_id: str) -> list:
    """Every record in the server's order, through ``mlflow.genai.datasets.get_dataset`` (its entity's records)."""
    with using_server(uri):
        return list(genai_datasets.get_dataset(dataset_id=dataset_id)._mlflow_dataset.records)


def _user_tags(tags: dict | None) -> dict:
    return {k: v for k, v in (tags or {}).items() if not k.startswith(PROVENANCE_PREFIX)}


def record_key(record) -> str:
    """Inputs identify a record within its dataset (MLflow keeps one record per distinct inputs)."""
    return json.dumps(record.inputs, sort_keys=True)


def record_fields(record, trace_ids: dict[str, str] | None = None) -> dict:
    source = record.source.to_dict() if record.source else None
    if source and trace_ids and source["source_data"].get("trace_id") in trace_ids:
        source["source_data"]["trace_id"] = trace_ids[source["source_data"]["trace_id"]]
    return {
        "inputs": record.inputs,
        "outputs": record.outputs,
        "expectations": record.expectations,
        "tags": _user_tags(record.tags),
        "source": source,
        "source_type": record.source_type,
        "source_id": trace_ids.get(record.source_id, record.source_id) if trace_ids else record.source_id,
        "created_by": record.created_by,
    }


def compare_records(source: list, dest: list, trace_ids: dict[str, str] | None = None) -> list[str]:
    """Field-by-field differences, and order: the destination must follow the source's order of creation times.

    Records created in one call share a creation time, and MLflow orders those by their (random) record
    IDs, so within one creation time the order is arbitrary on both sides.
    """
    diffs = []
    if len(source) != len(dest):
        diffs.append(f"{len(source)} records on the source, {len(dest)} on the destination")
    by_key = {record_key(r): r for r in source}
    group_of = {}
    times = sorted({r.created_time for r in source})
    for r in source:
        group_of[record_key(r)] = times.index(r.created_time)
    seen_groups = []
    for r in dest:
        original = by_key.get(record_key(r))
        if original is None:
            diffs.append(f"record {record_key(r)} is not on the source")
            continue
        expected, got = record_fields(original, trace_ids), record_fields(r)
        for key in expected:
            if expected[key] != got[key]:
                diffs.append(f"record {record_key(r)}: {key} {expected[key]!r} != {got[key]!r}")
        seen_groups.append(group_of[record_key(r)])
    if seen_groups != sorted(seen_groups):
        diffs.append("the destination's records are not in the source's order of creation")
    if len({record_key(r) for r in dest}) != len(dest):
        diffs.append("duplicate records on the destination")
    return diffs[:20]


def compare_dataset(source_uri: str, dest_uri: str, name: str, trace_ids: dict[str, str] | None = None) -> list[str]:
    """Every field a user can read, plus every record; experiment links compared by experiment name."""
    src, dst = only_dataset(source_uri, name), only_dataset(dest_uri, name)
    diffs = []
    for attribute in ("name", "created_by", "schema", "profile"):
        if getattr(src, attribute) != getattr(dst, attribute):
            diffs.append(f"{name}: {attribute} {getattr(src, attribute)!r} != {getattr(dst, attribute)!r}")
    if _user_tags(src.tags) != _user_tags(dst.tags):
        diffs.append(f"{name}: tags {src.tags} != {dst.tags}")
    links = [experiment_names(uri, MlflowClient(uri)._tracking_client.store.get_dataset_experiment_ids(d.dataset_id))
             for uri, d in ((source_uri, src), (dest_uri, dst))]
    if links[0] != links[1]:
        diffs.append(f"{name}: linked to {links[0]} on the source, {links[1]} on the destination")
    diffs += [f"{name}: {d}" for d in compare_records(records(source_uri, src.dataset_id), records(dest_uri, dst.dataset_id), trace_ids)]
    return diffs


def experiment_names(uri: str, experiment_ids: list[str]) -> list[str]:
    client = MlflowClient(uri)
    return sorted(client.get_experiment(e).name for e in experiment_ids)
