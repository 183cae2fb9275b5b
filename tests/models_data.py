"""Registered models, model versions and logged models for the round-trip tests, and their comparison.

``build_models_dataset(uri, prefix)`` fills a tracking server, through public MLflow
APIs only, with a small scikit-learn model logged as an MLflow 3 logged model and
registered under several versions (stages, aliases, tags, descriptions, a deleted
version, a version whose run was deleted, a version made from a ``models:/<id>``
source, a version made from a ``runs:/`` source), two more registered models in
other experiments, an unregistered logged model and a prompt.

``compare_registered_model`` and ``compare_logged_models`` check what an import
left on a destination, field by field, and return a list of differences.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import yaml
from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, LoggedModelStatus, ViewType
from sklearn.linear_model import LinearRegression

from tags import ARCHIVE_TAG_PREFIX, SOURCE_MODEL_ID_TAG, SOURCE_MODEL_NAME_TAG, SOURCE_VERSION_TAG

SOURCES_EXPERIMENT = "mlflow-archive-model-sources"
PIP_REQUIREMENTS = ["scikit-learn"]

FEATURES = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, -1.0], [5.5, 0.5]]
METRIC_TIME = 1_700_000_000_000


# -- helpers -------------------------------------------------------------------------------


def client_for(uri: str) -> MlflowClient:
    """A client whose registry is the same server (never a registry URI left over in the process)."""
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def using_server(uri: str):
    """Point MLflow's fluent API (tracking and registry) at ``uri``, then restore everything.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which
    the CLI subprocesses of the tests would inherit: those are restored too.
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    import mlflow.tracking.fluent as fluent

    # set_experiment too leaves state behind: the active experiment, and MLFLOW_EXPERIMENT_ID for
    # every later process (and for MLflow calls that link prompts to "the current experiment").
    saved_globals = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved_globals
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def strip_archive_tags(tags: dict, *also: str) -> dict:
    return {k: v for k, v in (tags or {}).items() if not k.startswith(ARCHIVE_TAG_PREFIX) and k not in also}


def name_filter(name: str) -> str:
    return f"name='{name}'"


def model_versions(client: MlflowClient, name: str) -> dict[int, object]:
    return {int(v.version): v for v in client.search_model_versions(name_filter(name), max_results=1000)}


def registered_model_names(client: MlflowClient) -> set[str]:
    """Names of the registered models (the client leaves prompts out)."""
    out, token = set(), None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        out |= {m.name for m in page}
        token = page.token
        if not token:
            return out


def all_experiment_ids(client: MlflowClient) -> list[str]:
    out, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        out += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return out


def all_logged_models(client: MlflowClient, experiment_ids: list[str]) -> list:
    out = []
    for start in range(0, len(experiment_ids), 50):
        token = None
        while True:
            page = client.search_logged_models(experiment_ids=experiment_ids[start : start + 50], max_results=100, page_token=token)
            out += list(page)
            token = page.token
            if not token:
                break
    return out


def dest_logged_models_by_source(uri: str) -> dict[str, list]:
    """Destination logged models grouped by the source model ID the importer tagged them with."""
    client = client_for(uri)
    grouped: dict[str, list] = {}
    for model in all_logged_models(client, all_experiment_ids(client)):
        source_id = model.tags.get(SOURCE_MODEL_ID_TAG)
        if source_id:
            grouped.setdefault(source_id, []).append(model)
    return grouped


def download(uri: str, artifact_uri: str, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(target), tracking_uri=uri))


def model_files(uri: str, artifact_location: str, target: Path, where: str, diffs: list[str]) -> dict[str, bytes]:
    """A logged model's files by relative path; none for a model whose location holds nothing."""
    try:
        return files_under(download(uri, artifact_location, target))
    except Exception as exc:
        if "No such file" not in str(exc) and "not found" not in str(exc).lower():
            diffs.append(f"{where}: cannot download files: {type(exc).__name__}: {str(exc)[:200]}")
        return {}


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def predict(uri: str, model_uri: str, features=FEATURES) -> list[float]:
    with using_server(uri):
        model = mlflow.pyfunc.load_model(model_uri)
        return [float(x) for x in np.asarray(model.predict(np.array(features))).ravel()]


# -- the data set --------------------------------------------------------------------------


@dataclass
class ModelsData:
    uri: str
    prefix: str
    experiments: dict[str, str] = field(default_factory=dict)  # role -> name
    experiment_ids: dict[str, str] = field(default_factory=dict)  # role -> id
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    logged_models: dict[str, str] = field(default_factory=dict)  # role -> model id
    main_model: str = ""
    aux_model: str = ""
    other_model: str = ""
    prompt: str = ""
    main_versions: list[int] = field(default_factory=list)  # versions left after the deletion
    deleted_version: int = 2
    deleted_run_version: int = 5
    aliases: dict[str, int] = field(default_factory=dict)  # aliases of the main model

    @property
    def model_names(self) -> list[str]:
        return [self.main_model, self.aux_model, self.other_model]


def _save_model_dir(model) -> Path:
    """A classic (MLflow 2 style) model directory, to log as run artifacts."""
    target = Path(tempfile.mkdtemp(prefix="models-data-")) / "model"
    mlflow.sklearn.save_model(model, str(target), pip_requirements=PIP_REQUIREMENTS)
    return target


def build_models_dataset(uri: str, prefix: str) -> ModelsData:
    """Fill the server at ``uri``; every name starts with ``prefix``."""
    client = client_for(uri)
    x = np.array(FEATURES)
    y = x @ np.array([2.0, -1.0]) + 0.5
    model = LinearRegression().fit(x, y)
    other = LinearRegression().fit(x, -y)
    p = prefix
    data = ModelsData(
        uri=uri,
        prefix=p,
        main_model=f"{p}reg-main",
        aux_model=f"{p}reg-aux ü.v2",  # a space, a non-ASCII letter and a dot: owner paths must encode them
        other_model=f"{p}other-model",
        prompt=f"{p}reg-prompt",  # matches the reg-* selector, and must still not be exported
    )
    data.experiments = {
        "main": f"{p}main 模型",
        "aux": f"{p}aux",
        "other": f"{p}other",
        "unrelated": f"{p}unrelated",
    }
    for role, name in data.experiments.items():
        data.experiment_ids[role] = client.create_experiment(name, tags={"role": role})

    with using_server(uri):
        train = mlflow.data.from_numpy(x, targets=y, name="tiny-train")
        holdout = mlflow.data.from_numpy(x[:3], targets=y[:3], name="tiny-holdout")

        # A: the main logged model, registered as version 1; metrics bound to it and to datasets
        with mlflow.start_run(experiment_id=data.experiment_ids["main"], run_name="train-a") as run:
            mlflow.log_param("fit_intercept", "true")
            info = mlflow.sklearn.log_model(
                model,
                name="lr-a",
                params={"alpha": "0.1", "solver": "lsqr"},
                tags={"quality": "gold"},
                model_type="regressor",
                registered_model_name=data.main_model,
                pip_requirements=PIP_REQUIREMENTS,
            )
            mlflow.log_metric("rmse", 0.125, step=3, timestamp=METRIC_TIME, model_id=info.model_id, dataset=train)
            mlflow.log_metric("rmse", 0.25, step=3, timestamp=METRIC_TIME + 1, model_id=info.model_id, dataset=holdout)
            mlflow.log_metric("r2", 0.97, step=0, timestamp=METRIC_TIME + 2, model_id=info.model_id)
        data.runs["a"], data.logged_models["a"] = run.info.run_id, info.model_id

        # B: registered as version 2, which is deleted below
        with mlflow.start_run(experiment_id=data.experiment_ids["main"], run_name="train-b") as run:
            info = mlflow.sklearn.log_model(
                other, name="lr-b", registered_model_name=data.main_model, pip_requirements=PIP_REQUIREMENTS
            )
        data.runs["b"], data.logged_models["b"] = run.info.run_id, info.model_id

        # X: a logged model that no version uses
        with mlflow.start_run(experiment_id=data.experiment_ids["main"], run_name="unversioned-x") as run:
            info = mlflow.sklearn.log_model(other, name="lr-x", params={"alpha": "9"}, pip_requirements=PIP_REQUIREMENTS)
            mlflow.log_metric("mae", 1.5, step=1, timestamp=METRIC_TIME, model_id=info.model_id, dataset=train)
        data.runs["x"], data.logged_models["x"] = run.info.run_id, info.model_id

        # a run of the main experiment that nothing depends on
        with mlflow.start_run(experiment_id=data.experiment_ids["main"], run_name="extra") as run:
            mlflow.log_param("unrelated", "yes")
            MlflowClient().log_inputs(run.info.run_id, models=[LoggedModelInput(data.logged_models["a"])])
        data.runs["extra"] = run.info.run_id

        # C and D: classic models saved as run artifacts
        for role in ("c", "d"):
            with mlflow.start_run(experiment_id=data.experiment_ids["main"], run_name=f"classic-{role}") as run:
                mlflow.log_artifacts(str(_save_model_dir(model)), "model")
            data.runs[role] = run.info.run_id

        # Y and Z: the models of the other two registered models
        for role, experiment, name in (("y", "aux", data.aux_model), ("z", "other", data.other_model)):
            with mlflow.start_run(experiment_id=data.experiment_ids[experiment], run_name=f"train-{role}") as run:
                info = mlflow.sklearn.log_model(
                    model, name=f"lr-{role}", registered_model_name=name, pip_requirements=PIP_REQUIREMENTS
                )
            data.runs[role], data.logged_models[role] = run.info.run_id, info.model_id

        with mlflow.start_run(experiment_id=data.experiment_ids["unrelated"], run_name="plain") as run:
            mlflow.log_metric("m", 1.0, step=0, timestamp=METRIC_TIME)
        data.runs["plain"] = run.info.run_id

        # a prompt: a registered model with a marker tag, which is not a registered model to export
        mlflow.genai.register_prompt(
            name=data.prompt, template="Hello {{name}}!", commit_message="first", tags={"kind": "greeting"}
        )

    main = data.main_model
    # version 3: from the logged model's URI; version 4: runs:/ source; version 5: the run's artifact URI
    client.create_model_version(
        main, source=f"models:/{data.logged_models['a']}", model_id=data.logged_models["a"],
        description="promoted copy of v1", tags={"origin": "models-uri"},
    )
    client.create_model_version(
        main, source=f"runs:/{data.runs['c']}/model", run_id=data.runs["c"],
        description="classic from runs:/", tags={"origin": "runs-uri"},
    )
    artifact_uri = client.get_run(data.runs["d"]).info.artifact_uri
    client.create_model_version(
        main, source=f"{artifact_uri}/model", run_id=data.runs["d"],
        description="its run is deleted", tags={"origin": "artifact-uri"},
    )
    client.delete_run(data.runs["d"])
    client.delete_model_version(main, str(data.deleted_version))
    data.main_versions = [1, 3, 4, 5]

    client.update_registered_model(main, description="Main regressor — ü 🚀")
    client.set_registered_model_tag(main, "owner", "pricing-team")
    client.set_registered_model_tag(main, "domain", "pricing")
    client.update_model_version(main, "1", description="first fit")
    client.set_model_version_tag(main, "1", "validated", "false")
    client.set_model_version_tag(main, "4", "legacy", "true")
    for version, stage in ((1, "Staging"), (3, "Production"), (4, "Archived")):
        client.transition_model_version_stage(main, str(version), stage, archive_existing_versions=False)
    data.aliases = {"champion": 3, "challenger": 1, "legacy": 4, "rescued": 5}
    for alias, version in data.aliases.items():
        client.set_registered_model_alias(main, alias, str(version))

    client.update_registered_model(data.aux_model, description="aux model")
    client.set_registered_model_tag(data.aux_model, "tier", "2")
    client.set_registered_model_alias(data.aux_model, "only", "1")
    client.transition_model_version_stage(data.aux_model, "1", "Production")
    client.set_registered_model_tag(data.other_model, "tier", "3")
    return data


# -- comparison ----------------------------------------------------------------------------


@dataclass
class IdMaps:
    runs: dict[str, str]  # source run ID -> destination run ID
    models: dict[str, str]  # source logged-model ID -> destination logged-model ID
    duplicates: list[str] = field(default_factory=list)


def id_maps(dest_uri: str, run_groups: dict[str, list]) -> IdMaps:
    """Maps from the importer's provenance tags (``run_groups`` from ``compare.runs_by_source_id``)."""
    maps = IdMaps(runs={}, models={})
    for source_id, runs in run_groups.items():
        maps.runs[source_id] = runs[0].info.run_id
        if len(runs) > 1:
            maps.duplicates.append(f"source run {source_id} imported {len(runs)} times")
    for source_id, models in dest_logged_models_by_source(dest_uri).items():
        maps.models[source_id] = models[0].model_id
        if len(models) > 1:
            maps.duplicates.append(f"source logged model {source_id} imported {len(models)} times: {[m.model_id for m in models]}")
    return maps


def _expected_source(src_client, dst_client, version, maps: IdMaps, restored_from_files: bool, dest_run_id):
    """What the destination version's source must be, or a callable check for the holder-run case."""
    source = version.source or ""
    if restored_from_files:
        return f"runs:/{dest_run_id}/model"
    if source.startswith("models:/m-"):
        rest = source[len("models:/") :]
        model_id, slash, sub = rest.partition("/")
        return f"models:/{maps.models.get(model_id, '<not imported>')}{slash}{sub}"
    if source.startswith("runs:/"):
        run_id, slash, sub = source[len("runs:/") :].partition("/")
        return f"runs:/{maps.runs.get(run_id, '<not imported>')}{slash}{sub}"
    if version.run_id:
        src_root = src_client.get_run(version.run_id).info.artifact_uri
        if source.startswith(src_root) and version.run_id in maps.runs:
            return dst_client.get_run(maps.runs[version.run_id]).info.artifact_uri + source[len(src_root) :]
    return "<no rule for this source>"


def compare_registered_model(
    source_uri: str,
    dest_uri: str,
    source_name: str,
    maps: IdMaps,
    dest_name: str | None = None,
    restored_from_files: set[int] = frozenset(),
) -> list[str]:
    """Differences between a source registered model and its imported copy.

    ``restored_from_files``: versions whose run is not in the archive, so that the importer
    must have restored them from the exported version files into a run of the experiment
    ``mlflow-archive-model-sources``.
    """
    src, dst = client_for(source_uri), client_for(dest_uri)
    dest_name = dest_name or source_name
    where = f"registered model {source_name!r}" + (f" (as {dest_name!r})" if dest_name != source_name else "")
    diffs: list[str] = []
    s = src.get_registered_model(source_name)
    try:
        d = dst.get_registered_model(dest_name)
    except Exception as exc:
        return [f"{where}: not on the destination ({type(exc).__name__}: {str(exc)[:200]})"]
    if (s.description or "") != (d.description or ""):
        diffs.append(f"{where}: description source {s.description!r}, destination {d.description!r}")
    if strip_archive_tags(s.tags) != strip_archive_tags(d.tags):
        diffs.append(f"{where}: tags source {strip_archive_tags(s.tags)}, destination {strip_archive_tags(d.tags)}")
    if d.tags.get(SOURCE_MODEL_NAME_TAG) != source_name:
        diffs.append(f"{where}: tag {SOURCE_MODEL_NAME_TAG} is {d.tags.get(SOURCE_MODEL_NAME_TAG)!r}, expected {source_name!r}")
    src_aliases = {a: int(v) for a, v in (s.aliases or {}).items()}
    dst_aliases = {a: int(v) for a, v in (d.aliases or {}).items()}
    if src_aliases != dst_aliases:
        diffs.append(f"{where}: aliases source {src_aliases}, destination {dst_aliases}")

    src_versions, dst_versions = model_versions(src, source_name), model_versions(dst, dest_name)
    if sorted(src_versions) != sorted(dst_versions):
        diffs.append(f"{where}: version numbers source {sorted(src_versions)}, destination {sorted(dst_versions)}")
    forbidden = set(maps.runs) | set(maps.models)
    for number in sorted(set(src_versions) & set(dst_versions)):
        sv, dv = src_versions[number], dst_versions[number]
        at = f"{where} version {number}"
        for attr in ("description", "current_stage"):
            a, b = getattr(sv, attr) or "", getattr(dv, attr) or ""
            if a != b:
                diffs.append(f"{at}: {attr} source {a!r}, destination {b!r}")
        if strip_archive_tags(sv.tags) != strip_archive_tags(dv.tags):
            diffs.append(f"{at}: tags source {strip_archive_tags(sv.tags)}, destination {strip_archive_tags(dv.tags)}")
        if dv.status != "READY":
            diffs.append(f"{at}: status {dv.status!r} ({dv.status_message!r}), expected 'READY'")
        if dv.tags.get(SOURCE_VERSION_TAG) != str(number):
            diffs.append(f"{at}: tag {SOURCE_VERSION_TAG} is {dv.tags.get(SOURCE_VERSION_TAG)!r}")

        # the run behind the version
        from_files = number in restored_from_files
        if from_files:
            holder = None
            try:
                holder = dst.get_run(dv.run_id) if dv.run_id else None
            except Exception:
                pass
            experiment = dst.get_experiment(holder.info.experiment_id).name if holder else None
            if holder is None or experiment != SOURCES_EXPERIMENT:
                diffs.append(
                    f"{at}: expected restored from the exported files into a run of {SOURCES_EXPERIMENT!r}; "
                    f"run_id {dv.run_id!r} (experiment {experiment!r}), source {dv.source!r}"
                )
            expected_run = dv.run_id
        elif sv.run_id:
            expected_run = maps.runs.get(sv.run_id, f"<source run {sv.run_id} not imported>")
        else:
            expected_run = None
        if (dv.run_id or None) != expected_run:
            diffs.append(f"{at}: run_id {dv.run_id!r}, expected {expected_run!r} (source run {sv.run_id!r})")

        # the source URI: rewritten to the destination's copy, never a source ID
        expected_source = _expected_source(src, dst, sv, maps, from_files, dv.run_id)
        if dv.source != expected_source:
            diffs.append(f"{at}: source {dv.source!r}, expected {expected_source!r} (source: {sv.source!r})")
        leaked = [i for i in forbidden if i in (dv.source or "")]
        if leaked:
            diffs.append(f"{at}: destination source {dv.source!r} names source IDs {leaked}")
    return diffs


def _metric_rows(model, run_map: dict[str, str] | None) -> Counter:
    return Counter(
        (
            m.key,
            float(m.value).hex(),
            m.step,
            m.timestamp,
            m.dataset_name or None,
            m.dataset_digest or None,
            (run_map or {}).get(m.run_id, f"<unmapped {m.run_id}>") if run_map is not None else m.run_id,
        )
        for m in (model.metrics or [])
    )


def _io_rows(run, maps: IdMaps | None) -> Counter:
    def mapped(model_id):
        return model_id if maps is None else maps.models.get(model_id, f"<unmapped {model_id}>")

    rows = Counter()
    for item in (run.inputs.model_inputs if run.inputs else None) or []:
        rows[("input", mapped(item.model_id), None)] += 1
    for item in (run.outputs.model_outputs if run.outputs else None) or []:
        rows[("output", mapped(item.model_id), item.step)] += 1
    return rows


def expected_mlmodel(source: dict, replacements: dict[str, str]) -> dict:
    out = dict(source)
    for key in ("run_id", "model_id", "model_uuid", "artifact_path"):
        if out.get(key) in replacements:
            out[key] = replacements[out[key]]
    return out


def compare_logged_models(
    source_uri: str,
    dest_uri: str,
    source_model_ids: list[str],
    maps: IdMaps,
    workdir: Path,
    experiment_rename: dict[str, str] | None = None,
    expect_files: bool = True,
) -> list[str]:
    """Differences between source logged models and their imported copies (files included).

    With ``expect_files``, a source model without files is reported, so that the comparison
    of the files (and of MLmodel) can never pass by having nothing to compare.
    """
    src, dst = client_for(source_uri), client_for(dest_uri)
    rename = experiment_rename or {}
    diffs: list[str] = []
    for source_id in source_model_ids:
        s = src.get_logged_model(source_id)
        where = f"logged model {s.name!r} ({source_id})"
        dest_id = maps.models.get(source_id)
        if dest_id is None:
            diffs.append(f"{where}: no destination logged model tagged {SOURCE_MODEL_ID_TAG}={source_id}")
            continue
        d = dst.get_logged_model(dest_id)
        src_experiment = src.get_experiment(s.experiment_id).name
        dst_experiment = dst.get_experiment(d.experiment_id).name
        if rename.get(src_experiment, src_experiment) != dst_experiment:
            diffs.append(f"{where}: in experiment {dst_experiment!r}, expected {src_experiment!r}")
        for attr in ("name", "model_type", "status"):
            a, b = getattr(s, attr), getattr(d, attr)
            if attr == "status":
                a, b = str(LoggedModelStatus(a)), str(LoggedModelStatus(b))
            if (a or None) != (b or None):
                diffs.append(f"{where}: {attr} source {a!r}, destination {b!r}")
        expected_run = maps.runs.get(s.source_run_id, f"<source run {s.source_run_id} not imported>") if s.source_run_id else None
        if (d.source_run_id or None) != expected_run:
            diffs.append(f"{where}: source_run_id {d.source_run_id!r}, expected {expected_run!r}")
        if dict(s.params or {}) != dict(d.params or {}):
            diffs.append(f"{where}: params source {s.params}, destination {d.params}")
        # mlflow.modelVersions included: the same versions, the deleted one too, and no gap placeholder
        s_tags = strip_archive_tags(s.tags)
        d_tags = strip_archive_tags(d.tags)
        if s_tags != d_tags:
            diffs.append(f"{where}: tags source {s_tags}, destination {d_tags}")
        expected_metrics, got_metrics = _metric_rows(s, maps.runs), _metric_rows(d, None)
        if expected_metrics != got_metrics:
            diffs.append(
                f"{where}: metrics (key, value, step, timestamp, dataset, digest, run) expected "
                f"{sorted(expected_metrics.elements())}, destination {sorted(got_metrics.elements())}"
            )

        # files: identical, except MLmodel whose IDs and location point at the destination
        target = workdir / source_id
        src_files = model_files(source_uri, s.artifact_location, target / "src", f"{where}: source", diffs)
        if expect_files and "MLmodel" not in src_files:
            diffs.append(f"{where}: no MLmodel downloaded from the source (test setup error?): {sorted(src_files)}")
        dst_files = model_files(dest_uri, d.artifact_location, target / "dst", f"{where}: destination", diffs)
        if sorted(src_files) != sorted(dst_files):
            diffs.append(f"{where}: files source {sorted(src_files)}, destination {sorted(dst_files)}")
        for path in sorted(set(src_files) & set(dst_files)):
            if Path(path).name == "MLmodel":
                s_yaml = yaml.safe_load(src_files[path])
                d_yaml = yaml.safe_load(dst_files[path])
                replacements = {source_id: dest_id, s.artifact_location: d.artifact_location}
                if s.source_run_id and s.source_run_id in maps.runs:
                    replacements[s.source_run_id] = maps.runs[s.source_run_id]
                expected = expected_mlmodel(s_yaml, replacements)
                if d_yaml != expected:
                    keys = sorted(k for k in set(expected) | set(d_yaml) if expected.get(k) != d_yaml.get(k))
                    diffs.append(
                        f"{where}: {path} differs in {keys}: expected "
                        f"{ {k: expected.get(k) for k in keys} }, destination { {k: d_yaml.get(k) for k in keys} }"
                    )
                text = dst_files[path].decode("utf-8", "replace")
                leaked = [i for i in (source_id, s.source_run_id) if i and i in text]
                if leaked:
                    diffs.append(f"{where}: destination {path} still names source IDs {leaked}")
            elif src_files[path] != dst_files[path]:
                diffs.append(f"{where}: file {path!r} differs ({len(src_files[path])} vs {len(dst_files[path])} bytes)")
    return diffs


def compare_model_io(source_uri: str, dest_uri: str, source_run_ids: list[str], maps: IdMaps) -> list[str]:
    """The runs' logged-model inputs and outputs point at the destination's models."""
    src, dst = client_for(source_uri), client_for(dest_uri)
    diffs = []
    for run_id in source_run_ids:
        if run_id not in maps.runs:
            diffs.append(f"run {run_id}: not imported")
            continue
        expected, got = _io_rows(src.get_run(run_id), maps), _io_rows(dst.get_run(maps.runs[run_id]), None)
        if expected != got:
            diffs.append(f"run {run_id}: model inputs/outputs expected {sorted(expected, key=str)}, destination {sorted(got, key=str)}")
    return diffs


def registry_snapshot(uri: str, names: list[str]) -> dict:
    """What a no-op import must leave untouched: every version's fields and the aliases."""
    client = client_for(uri)
    out = {}
    for name in names:
        model = client.get_registered_model(name)
        out[name] = {
            "aliases": dict(model.aliases or {}),
            "tags": dict(model.tags),
            "description": model.description,
            "versions": {
                n: (v.source, v.run_id, v.current_stage, v.description, tuple(sorted(v.tags.items())), v.status)
                for n, v in model_versions(client, name).items()
            },
        }
    return out
