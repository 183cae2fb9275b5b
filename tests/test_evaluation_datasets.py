"""Round trips of GenAI evaluation datasets between real servers.

The data set (``tests/datasets_data.py``) is built once on the shared ``scratch_server`` under this
module's prefix: a dataset of nested records linked to two experiments, one made from traces, and
one of 5,000 records. One export of the module's experiments is imported into an empty destination
(``module_dest_server``); smaller exports by dataset name serve the selection, conflict, replace and
store-without-datasets tests, which use the shared ``dest_server`` or a local FileStore.
"""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

import archive_cli
from archive_cli import export_counts, import_counts
from datasets_data import (
    BIG_RECORDS,
    build_datasets,
    compare_dataset,
    compare_records,
    datasets_named,
    only_dataset,
    records,
)
from test_models_roundtrip import archive_contents

SOURCE_ID_TAG = "mlflow_archive.source_dataset_id"
STATE_TAG = "mlflow_archive.import_state"


@pytest.fixture(scope="module")
def data(scratch_server):
    return build_datasets(scratch_server.url, f"ds-{uuid.uuid4().hex[:8]}-")


@pytest.fixture(scope="module")
def full_archive(data, scratch_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("datasets") / "full.mlar"
    result = archive_cli.export(path, scratch_server.url, "--experiments", f"{data.prefix}*")
    return path, export_counts(result.stderr_text)


@pytest.fixture(scope="module")
def nested_archive(data, scratch_server, tmp_path_factory):
    """Only the nested dataset (and, as its dependencies, the two experiments it is linked to)."""
    path = tmp_path_factory.mktemp("datasets") / "nested.mlar"
    result = archive_cli.export(path, scratch_server.url, "--evaluation-datasets", data.name("nested"))
    return path, export_counts(result.stderr_text)


@pytest.fixture(scope="module")
def imported(full_archive, module_dest_server):
    result = archive_cli.import_(full_archive[0], module_dest_server.url)
    return import_counts(result.stderr_text)


def trace_map(data, dest_uri: str, counts: dict) -> dict[str, str] | None:
    """Source trace ID -> destination trace ID when this version imports traces; None (IDs kept as they were) otherwise."""
    if not counts.get("traces"):
        return None
    source, dest = MlflowClient(data.uri), MlflowClient(dest_uri)
    copies = dest.search_traces(locations=[experiment_on(dest_uri, data.name("a"))])
    mapping = {}
    for trace_id in data.trace_ids:
        inputs = source.get_trace(trace_id).data.spans[0].inputs
        found = [t.info.trace_id for t in copies if t.data.spans[0].inputs == inputs]
        assert len(found) == 1, f"trace {trace_id} was imported {len(found)} times"
        mapping[trace_id] = found[0]
    return mapping


def experiment_on(uri: str, name: str) -> str:
    return MlflowClient(uri).get_experiment_by_name(name).experiment_id


def test_export_writes_every_record_in_bounded_parts(data, full_archive):
    path, counts = full_archive
    assert counts["evaluation_datasets"] == 3
    assert counts["evaluation_dataset_records"] == BIG_RECORDS + 7 + 3
    tables, _ = archive_contents(path)
    rows = tables["evaluation_dataset_records"]
    assert len(rows) == counts["evaluation_dataset_records"]
    by_dataset = [r["dataset_id"] for r in rows]
    # Each dataset's records are contiguous and follow its row in the datasets table.
    order = list(dict.fromkeys(by_dataset))
    assert order == [r["dataset_id"] for r in tables["evaluation_datasets"]]
    assert sorted(order) == sorted(data.datasets.values())
    exported = {r["name"]: r for r in tables["evaluation_datasets"]}
    assert sorted(exported[data.name("nested")]["experiment_ids"]) == sorted(data.experiments.values())


def test_round_trip_keeps_every_dataset_and_record(data, scratch_server, module_dest_server, imported):
    assert imported["evaluation_datasets"] == (3, 0, 0)
    assert imported["evaluation_dataset_records"] == (BIG_RECORDS + 10, 0, 0)
    traces = trace_map(data, module_dest_server.url, imported)
    diffs = []
    for name in data.datasets:
        diffs += compare_dataset(scratch_server.url, module_dest_server.url, name, traces)
    assert not diffs, "\n".join(diffs)


def test_records_from_traces_name_the_destination_traces(data, module_dest_server, imported):
    dest = only_dataset(module_dest_server.url, data.name("traces"))
    sources = sorted(r.source.source_data["trace_id"] for r in records(module_dest_server.url, dest.dataset_id))
    traces = trace_map(data, module_dest_server.url, imported)
    expected = sorted(traces[t] for t in data.trace_ids) if traces else sorted(data.trace_ids)
    assert sources == expected
    if traces:
        client = MlflowClient(module_dest_server.url)
        assert all(client.get_trace(t) is not None for t in sources)


def test_dataset_linked_to_two_experiments_links_both_destination_copies(data, module_dest_server, imported):
    dest = only_dataset(module_dest_server.url, data.name("nested"))
    store = MlflowClient(module_dest_server.url)._tracking_client.store
    assert sorted(store.get_dataset_experiment_ids(dest.dataset_id)) == sorted(
        experiment_on(module_dest_server.url, data.name(short)) for short in ("a", "b")
    )
    assert dest.tags[SOURCE_ID_TAG] == data.datasets[data.name("nested")]
    assert dest.tags[STATE_TAG] == "complete"


def test_import_twice_creates_nothing(data, full_archive, module_dest_server, imported):
    counts = import_counts(archive_cli.import_(full_archive[0], module_dest_server.url).stderr_text)
    assert counts["evaluation_datasets"] == (0, 3, 0)
    assert counts.get("evaluation_dataset_records", (0, 0, 0))[0] == 0
    for name in data.datasets:
        assert len(datasets_named(module_dest_server.url, name)) == 1


def test_interrupted_import_finishes_without_duplicates(data, scratch_server, nested_archive, module_dest_server, imported):
    """A dataset an import left partial (state tag, records missing) is replaced by the next run."""
    name = data.name("nested")
    left = only_dataset(module_dest_server.url, name)
    store = MlflowClient(module_dest_server.url)._tracking_client.store
    store.set_dataset_tags(left.dataset_id, {STATE_TAG: "partial"})
    store.delete_dataset_records(left.dataset_id, [r.dataset_record_id for r in records(module_dest_server.url, left.dataset_id)[:3]])
    counts = import_counts(archive_cli.import_(nested_archive[0], module_dest_server.url).stderr_text)
    assert counts["evaluation_datasets"] == (1, 0, 0)
    assert only_dataset(module_dest_server.url, name).dataset_id != left.dataset_id
    diffs = compare_dataset(scratch_server.url, module_dest_server.url, name)
    assert not diffs, "\n".join(diffs)


def test_selection_by_name_all_and_none(data, scratch_server, nested_archive, tmp_path):
    path, counts = nested_archive
    assert counts["evaluation_datasets"] == 1
    assert counts["experiments"] == 2  # the experiments the dataset is linked to, without their runs
    assert "runs" not in counts
    tables, _ = archive_contents(path)
    assert [r["name"] for r in tables["evaluation_datasets"]] == [data.name("nested")]

    only_a = tmp_path / "a.mlar"
    result = archive_cli.export(only_a, scratch_server.url, "--evaluation-datasets", "all", "--experiment-ids",
                                data.experiments[data.name("a")])
    tables, _ = archive_contents(only_a)
    assert sorted(r["name"] for r in tables["evaluation_datasets"]) == sorted([data.name("nested"), data.name("traces")])
    assert export_counts(result.stderr_text)["evaluation_datasets"] == 2

    names_file = tmp_path / "names.txt"
    names_file.write_text(f"{data.name('traces')}\n{data.name('nested')}\n")
    by_file = tmp_path / "file.mlar"
    archive_cli.export(by_file, scratch_server.url, "--evaluation-datasets", str(names_file))
    tables, _ = archive_contents(by_file)
    assert sorted(r["name"] for r in tables["evaluation_datasets"]) == sorted([data.name("nested"), data.name("traces")])

    none = tmp_path / "none.mlar"
    result = archive_cli.export(none, scratch_server.url, "--experiments", f"{data.prefix}*", "--no-evaluation-datasets")
    assert "evaluation_datasets" not in export_counts(result.stderr_text)
    assert "evaluation_datasets" not in archive_contents(none)[0]

    missing = archive_cli.export(tmp_path / "x.mlar", scratch_server.url, "--evaluation-datasets", data.name("nope"), check=False)
    assert missing.returncode != 0 and "No evaluation dataset named" in missing.stderr_text


def test_existing_dataset_is_kept_unless_delete_evaluation_dataset(data, scratch_server, dest_server, nested_archive):
    name = data.name("nested")
    store = MlflowClient(dest_server.url)._tracking_client.store
    theirs = store.create_dataset(name, tags={"origin": "destination"})
    store.upsert_dataset_records(theirs.dataset_id, [{"inputs": {"question": "theirs"}}])

    kept = archive_cli.import_(nested_archive[0], dest_server.url)
    assert import_counts(kept.stderr_text)["evaluation_datasets"] == (0, 1, 0)
    warnings = [line for line in kept.stderr_text.splitlines() if "--delete-evaluation-dataset" in line]
    assert len(warnings) == 1 and "1 evaluation dataset(s) existed" in warnings[0]
    assert [d.dataset_id for d in datasets_named(dest_server.url, name)] == [theirs.dataset_id]

    replaced = archive_cli.import_(nested_archive[0], dest_server.url, "--delete-evaluation-dataset", "--import-source-tags")
    assert import_counts(replaced.stderr_text)["evaluation_datasets"] == (1, 0, 0)
    ours = only_dataset(dest_server.url, name)
    assert ours.dataset_id != theirs.dataset_id
    source = only_dataset(scratch_server.url, name)
    assert ours.tags["mlflow_archive.source.dataset_id"] == source.dataset_id
    assert ours.tags["mlflow_archive.source.created_time"] == str(source.created_time)
    source_records = records(scratch_server.url, source.dataset_id)
    dest_records = records(dest_server.url, ours.dataset_id)
    assert sorted(r.tags["mlflow_archive.source.record_id"] for r in dest_records) == sorted(
        r.dataset_record_id for r in source_records)
    assert not compare_records(source_records, dest_records)

    again = archive_cli.import_(nested_archive[0], dest_server.url, "--delete-evaluation-dataset")
    assert import_counts(again.stderr_text)["evaluation_datasets"] == (1, 0, 0)
    replacement = only_dataset(dest_server.url, name)
    assert replacement.dataset_id != ours.dataset_id
    assert not compare_dataset(scratch_server.url, dest_server.url, name)
    assert import_counts(archive_cli.import_(nested_archive[0], dest_server.url).stderr_text)["evaluation_datasets"] == (0, 1, 0)


def test_store_without_datasets_says_so_in_one_line(nested_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    result = archive_cli.import_(nested_archive[0], (tmp_path / "mlruns").as_uri(), check=False)
    counts = import_counts(result.stderr_text)
    assert counts["experiments"] == (2, 0, 0)
    assert counts["evaluation_datasets"] == (0, 0, 1)
    lines = [line for line in result.stderr_text.splitlines() if "evaluation" in line]
    assert len(lines) == 1 and "only SQL-backed stores" in lines[0], result.describe()
    assert result.returncode == 1

    exported = archive_cli.export(tmp_path / "from-files.mlar", (tmp_path / "mlruns").as_uri())
    notes = [line for line in exported.stderr_text.splitlines() if "evaluation datasets" in line]
    assert len(notes) == 1 and notes[0].startswith("note: the source store has no evaluation datasets"), exported.describe()
    assert export_counts(exported.stderr_text)["experiments"] == 3
