"""Field-by-field comparison of the experiments and runs of two tracking servers.

``compare_servers(source_uri, dest_uri, ...)`` matches every source experiment
to the destination experiment of the same name (after an optional rename), and
every source run to the destination run whose ``mlflow_archive.source_run_id``
tag holds the source run ID. It then compares everything an import must keep,
and raises ``ComparisonError`` listing the first differences.

Deliberately not compared, because an import changes them by design:
experiment and run IDs, artifact locations/URIs, experiment creation and last
update times (with ``--import-source-tags`` the importer keeps them as tags, see
``test_import_source_tags``), and every tag whose key starts with
``mlflow_archive.``, which the importer adds for provenance.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from mlflow import MlflowClient
from mlflow.entities import Experiment, Run, ViewType

from tags import (
    ABANDONED,
    ARCHIVE_TAG_PREFIX,
    IMPORT_STATE_TAG,
    LOG_MODEL_HISTORY_TAG,
    PARENT_TAG,
    SOURCE_EXPERIMENT_TAG,
    SOURCE_RUN_TAG,
)

DEFAULT_EXPERIMENT_NAME = "Default"


class ComparisonError(AssertionError):
    pass


# -- listing helpers -----------------------------------------------------------------------


def all_experiments(client: MlflowClient, view_type: int = ViewType.ALL) -> list[Experiment]:
    out, token = [], None
    while True:
        page = client.search_experiments(view_type=view_type, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def all_runs(client: MlflowClient, experiment_ids: Iterable[str], view_type: int = ViewType.ALL) -> list[Run]:
    out = []
    for experiment_id in experiment_ids:
        token = None
        while True:
            page = client.search_runs([experiment_id], run_view_type=view_type, max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                break
    return out


def server_runs(uri: str) -> list[Run]:
    """Every run of every experiment of a server, deleted ones included."""
    client = MlflowClient(tracking_uri=uri)
    return all_runs(client, [e.experiment_id for e in all_experiments(client)])


def runs_by_source_id(uri: str, include_abandoned: bool = False) -> dict[str, list[Run]]:
    """Destination runs grouped by the source run ID the importer tagged them with."""
    grouped: dict[str, list[Run]] = {}
    for run in server_runs(uri):
        source_id = run.data.tags.get(SOURCE_RUN_TAG)
        if not include_abandoned and run.data.tags.get(IMPORT_STATE_TAG) == ABANDONED:
            continue
        if source_id is not None:
            grouped.setdefault(source_id, []).append(run)
    return grouped


def _run_artifacts(client: MlflowClient, run_id: str):
    """The run's artifact repository, by its URI: a ``runs:/`` URI would make MLflow 3 look for
    logged models too, which an MLflow 2 server does not have."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(client.get_run(run_id).info.artifact_uri, tracking_uri=client.tracking_uri)


def list_artifacts_recursive(client: MlflowClient, run_id: str) -> dict[str, int | None]:
    """Relative file path -> size (None for a directory, whose files are listed too)."""
    repository = _run_artifacts(client, run_id)
    out: dict[str, int | None] = {}

    def walk(path: str | None) -> None:
        for info in repository.list_artifacts(path):
            if info.is_dir:
                out[info.path] = None
                walk(info.path)
            else:
                out[info.path] = info.file_size or 0

    walk(None)
    return out


# -- value normalisation -------------------------------------------------------------------


def _metric_value_key(value: float):
    """NaN equals NaN; infinities and every other double compare exactly (by bit pattern for 0.0/-0.0)."""
    if math.isnan(value):
        return ("nan",)
    return ("num", value.hex())


MAX_DOUBLE = 1.7976931348623157e308


def as_sql_stores_it(value: float) -> float:
    """A point's value as MLflow's SQL store on SQLite keeps it: ±inf as ±MAX_DOUBLE (the store), -0.0 as 0.0 (SQLite)."""
    return value if math.isnan(value) else max(-MAX_DOUBLE, min(MAX_DOUBLE, value)) + 0.0


def metric_points(client: MlflowClient, run_id: str, key: str, stored=lambda value: value) -> Counter:
    return Counter((_metric_value_key(stored(m.value)), m.timestamp, m.step) for m in client.get_metric_history(run_id, key))


def _format_point(point) -> str:
    (kind, *rest), timestamp, step = point
    value = "NaN" if kind == "nan" else repr(float.fromhex(rest[0]))
    return f"(value={value}, timestamp={timestamp}, step={step})"


def dataset_inputs(run: Run) -> Counter:
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return Counter(
        (
            di.dataset.name,
            di.dataset.digest,
            di.dataset.source_type,
            di.dataset.source,
            di.dataset.schema,
            di.dataset.profile,
            tuple(sorted((t.key, t.value) for t in di.tags)),
        )
        for di in inputs
    )


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _dict_diff(what: str, expected: dict, got: dict, expected_label: str = "source") -> list[str]:
    out = []
    for key in sorted(set(expected) | set(got), key=str):
        if key not in got:
            out.append(f"{what} {key!r} missing on destination ({expected_label}: {_short(expected[key])})")
        elif key not in expected:
            out.append(f"{what} {key!r} only on destination: {_short(got[key])}")
        elif expected[key] != got[key]:
            out.append(
                f"{what} {key!r} differs: {expected_label} {_short(expected[key])}, destination {_short(got[key])}"
            )
    return out


def _counter_diff(what: str, expected: Counter, got: Counter, fmt=_short, limit: int = 5) -> list[str]:
    missing = list((expected - got).elements())
    extra = list((got - expected).elements())
    out = []
    if missing:
        shown = ", ".join(fmt(x) for x in missing[:limit])
        out.append(f"{what}: {len(missing)} missing on destination, e.g. {shown}")
    if extra:
        shown = ", ".join(fmt(x) for x in extra[:limit])
        out.append(f"{what}: {len(extra)} only on destination, e.g. {shown}")
    return out


def _strip_archive_tags(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if not k.startswith(ARCHIVE_TAG_PREFIX)}


# -- the comparison ------------------------------------------------------------------------


@dataclass
class Comparison:
    experiment_map: dict[str, str] = field(default_factory=dict)  # source experiment ID -> destination ID
    run_map: dict[str, str] = field(default_factory=dict)  # source run ID -> destination run ID
    differences: list[str] = field(default_factory=list)
    compared_runs: int = 0
    compared_experiments: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def report(self, limit: int = 40) -> str:
        shown = self.differences[:limit]
        more = len(self.differences) - len(shown)
        lines = [f"{len(self.differences)} difference(s) between source and destination:"]
        lines += [f"  - {d}" for d in shown]
        if more:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)


def compare_servers(
    source_uri: str,
    dest_uri: str,
    *,
    experiment_names: Iterable[str] | None = None,
    include_deleted_runs: bool = True,
    include_deleted_experiments: bool = True,
    run_filter: Callable[[Run], bool] | None = None,
    rename: dict[str, str] | None = None,
    compare_experiment_tags: bool = True,
    require_experiment_source_tag: bool = True,
    check_artifacts: bool = True,
    exact: bool = False,
    raise_on_difference: bool = True,
    match_by_id: bool = False,
    sql_destination_of_other_store: bool = False,
) -> Comparison:
    """Compare what the import of an export of ``source_uri`` left on ``dest_uri``.

    ``experiment_names`` limits the comparison to those source experiments (default: all,
    ``Default`` included); ``include_deleted_*`` and ``run_filter`` say which source objects
    the export was asked to carry. ``require_experiment_source_tag`` is false for an
    experiment that existed on the destination before the import. With ``exact``, the destination must hold nothing
    imported beyond that: no experiment other than the expected ones and ``Default``, no
    imported run that was not expected. Duplicate imports of one source run are always
    reported. ``match_by_id`` matches runs by their own IDs instead, to check this
    module by comparing a server with itself. ``sql_destination_of_other_store``: a FileStore source into a SQL
    store, which keeps ±inf and -0.0 otherwise (``as_sql_stores_it``); the expected points are mapped so.
    """
    src = MlflowClient(tracking_uri=source_uri)
    dst = MlflowClient(tracking_uri=dest_uri)
    rename = rename or {}
    result = Comparison()
    diffs = result.differences

    # experiments
    wanted = set(experiment_names) if experiment_names is not None else None
    src_experiments = [
        e
        for e in all_experiments(src)
        if (wanted is None or e.name in wanted)
        and (include_deleted_experiments or e.lifecycle_stage == "active")
    ]
    if wanted is not None:
        found = {e.name for e in src_experiments}
        for name in sorted(wanted - found):
            diffs.append(f"source has no experiment named {name!r} (test setup error?)")
    dst_experiments = all_experiments(dst)
    dst_by_name = {e.name: e for e in dst_experiments}
    for exp in src_experiments:
        dest_name = rename.get(exp.name, exp.name)
        where = f"experiment {exp.name!r} (source id {exp.experiment_id})"
        got = dst_by_name.get(dest_name)
        if got is None:
            diffs.append(f"{where}: no destination experiment named {dest_name!r}")
            continue
        result.compared_experiments += 1
        result.experiment_map[exp.experiment_id] = got.experiment_id
        if got.lifecycle_stage != exp.lifecycle_stage:
            diffs.append(f"{where}: lifecycle_stage source {exp.lifecycle_stage!r}, destination {got.lifecycle_stage!r}")
        if compare_experiment_tags:
            diffs += [f"{where}: {d}" for d in _dict_diff("tag", _strip_archive_tags(exp.tags), _strip_archive_tags(got.tags))]
        source_id_tag = got.tags.get(SOURCE_EXPERIMENT_TAG)
        if require_experiment_source_tag and exp.name != DEFAULT_EXPERIMENT_NAME and source_id_tag is None and not match_by_id:
            diffs.append(f"{where}: destination experiment lacks tag {SOURCE_EXPERIMENT_TAG!r}")
    if exact:
        expected_names = {rename.get(e.name, e.name) for e in src_experiments} | {DEFAULT_EXPERIMENT_NAME}
        for exp in dst_experiments:
            if exp.name not in expected_names:
                diffs.append(f"destination has unexpected experiment {exp.name!r} (id {exp.experiment_id}, {exp.lifecycle_stage})")

    # runs
    src_runs = [
        r
        for r in all_runs(src, [e.experiment_id for e in src_experiments])
        if (include_deleted_runs or r.info.lifecycle_stage == "active") and (run_filter is None or run_filter(r))
    ]
    dst_runs = all_runs(dst, [e.experiment_id for e in dst_experiments])
    dst_by_source: dict[str, list[Run]] = {}
    for run in dst_runs:
        source_id = run.info.run_id if match_by_id else run.data.tags.get(SOURCE_RUN_TAG)
        if source_id is None:
            continue
        if run.data.tags.get(IMPORT_STATE_TAG) == ABANDONED:
            if run.info.lifecycle_stage != "deleted":
                diffs.append(f"destination run {run.info.run_id} is marked {ABANDONED} but is not deleted")
            continue
        dst_by_source.setdefault(source_id, []).append(run)
    for source_id, runs in dst_by_source.items():
        if len(runs) > 1:
            diffs.append(
                f"source run {source_id} was imported {len(runs)} times: destination runs "
                f"{sorted(r.info.run_id for r in runs)}"
            )
    expected_ids = {r.info.run_id for r in src_runs}
    for run in src_runs:
        if run.info.run_id in dst_by_source:
            result.run_map[run.info.run_id] = dst_by_source[run.info.run_id][0].info.run_id
    if exact:
        for source_id, runs in sorted(dst_by_source.items()):
            if source_id not in expected_ids:
                diffs.append(
                    f"destination run {runs[0].info.run_id} ({runs[0].info.run_name!r}) was imported from source run "
                    f"{source_id}, which the export should not have carried"
                )

    def compare_one(run: Run) -> list[str]:
        where = f"run {run.info.run_name!r} (source id {run.info.run_id})"
        matches = dst_by_source.get(run.info.run_id)
        if not matches:
            return [f"{where}: no destination run tagged {SOURCE_RUN_TAG}={run.info.run_id}"]
        got = dst.get_run(matches[0].info.run_id)
        stored = as_sql_stores_it if sql_destination_of_other_store else (lambda value: value)
        return [f"{where}: {d}" for d in _compare_run(src, dst, run, got, result, check_artifacts, stored)]

    # Runs are independent: compare several at once (each takes a few round trips).
    with ThreadPoolExecutor(max_workers=4) as pool:
        for run, run_diffs in zip(src_runs, pool.map(compare_one, src_runs)):
            if run.info.run_id in dst_by_source:
                result.compared_runs += 1
            diffs += run_diffs
    if diffs and raise_on_difference:
        raise ComparisonError(result.report())
    return result


def _compare_run(
    src: MlflowClient, dst: MlflowClient, run: Run, got: Run, result: Comparison, check_artifacts: bool, stored
) -> list[str]:
    diffs = []
    run = src.get_run(run.info.run_id)  # search results lack dataset inputs on some stores
    state = got.data.tags.get(IMPORT_STATE_TAG)
    if state not in (None, "complete"):
        diffs.append(f"destination run {got.info.run_id} has {IMPORT_STATE_TAG}={state!r}, not 'complete'")
    expected_experiment = result.experiment_map.get(run.info.experiment_id)
    if expected_experiment is not None and got.info.experiment_id != expected_experiment:
        diffs.append(
            f"is in destination experiment {got.info.experiment_id}, expected {expected_experiment} "
            f"(the one matching source experiment {run.info.experiment_id})"
        )
    for attr in ("run_name", "user_id", "status", "start_time", "end_time", "lifecycle_stage"):
        a, b = getattr(run.info, attr), getattr(got.info, attr)
        if a != b:
            diffs.append(f"{attr}: source {a!r}, destination {b!r}")
    diffs += _dict_diff("param", run.data.params, got.data.params)

    expected_tags = _strip_archive_tags(run.data.tags)
    if PARENT_TAG in expected_tags:
        source_parent = expected_tags[PARENT_TAG]
        if source_parent in result.run_map:
            expected_tags[PARENT_TAG] = result.run_map[source_parent]
        else:
            diffs.append(f"parent run {source_parent} was not imported, so {PARENT_TAG} cannot be checked")
    got_tags = _strip_archive_tags(got.data.tags)
    if LOG_MODEL_HISTORY_TAG in expected_tags:  # the importer points its entries at the new run (README)
        expected_tags[LOG_MODEL_HISTORY_TAG] = json.loads(expected_tags[LOG_MODEL_HISTORY_TAG].replace(run.info.run_id, got.info.run_id))
        got_tags[LOG_MODEL_HISTORY_TAG] = json.loads(got_tags.get(LOG_MODEL_HISTORY_TAG, "null"))
    diffs += _dict_diff("tag", expected_tags, got_tags, "expected")

    for key in sorted(set(run.data.metrics) | set(got.data.metrics)):
        expected_points = metric_points(src, run.info.run_id, key, stored) if key in run.data.metrics else Counter()
        got_points = metric_points(dst, got.info.run_id, key) if key in got.data.metrics else Counter()
        diffs += _counter_diff(f"metric {key!r} history", expected_points, got_points, fmt=_format_point)

    diffs += _counter_diff("dataset inputs", dataset_inputs(run), dataset_inputs(got))

    if check_artifacts:
        diffs += _compare_artifacts(src, dst, run.info.run_id, got.info.run_id)
    return diffs


def _compare_artifacts(src: MlflowClient, dst: MlflowClient, src_run_id: str, dst_run_id: str) -> list[str]:
    expected = list_artifacts_recursive(src, src_run_id)
    got = list_artifacts_recursive(dst, dst_run_id)
    diffs = _dict_diff("artifact (size)", expected, got)
    files = sorted(p for p, size in expected.items() if size is not None and p in got and got[p] is not None)
    if not files:
        return diffs
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "src", Path(tmp) / "dst"
        for client, run_id, target in ((src, src_run_id, a), (dst, dst_run_id, b)):
            target.mkdir()
            _run_artifacts(client, run_id).download_artifacts("", str(target))
        for rel in files:
            left, right = a / rel, b / rel
            if not right.is_file():
                diffs.append(f"artifact {rel!r} listed but not downloadable from destination")
                continue
            lb, rb = left.read_bytes(), right.read_bytes()
            if lb != rb:
                first = next((i for i, (x, y) in enumerate(zip(lb, rb)) if x != y), min(len(lb), len(rb)))
                diffs.append(
                    f"artifact {rel!r} bytes differ: {len(lb)} bytes on source, {len(rb)} on destination, "
                    f"first difference at offset {first}"
                )
    return diffs
