"""What an export takes: experiments, runs, logged models and registered models, with their dependencies.

Rules (README, "Selecting what to export"):
- no selector: everything;
- ``--experiments``: those experiments (their runs and logged models), and no registered models
  unless ``--models`` is given too;
- ``--models``: those models' versions, plus the runs, logged models and experiments the versions
  depend on (only those runs, or every run of those experiments with ``--export-all-runs``);
- ``--logged-models``: only those logged models (plus their source runs when no experiments are named);
- prompts are global, like registered models: no selector at all exports every prompt, ``--prompts``
  names them (alone: only those), any other selector alone exports none; ``--no-prompts`` leaves them out.
- ``--evaluation-datasets``: those datasets (``all``: every one, or with ``--experiments`` those linked to the
  exported experiments), plus the experiments they are linked to; with no selector, every dataset; otherwise
  the datasets linked to the exported experiments (objects/evaluation_datasets.py).
- ``--traces`` with trace IDs: only those traces (plus their experiments when no experiments are named);
  otherwise every trace of the experiments whose runs are all exported.
"""

from __future__ import annotations

from typing import Iterable

from mlflow.entities import Experiment, LifecycleStage
from mlflow.entities.model_registry import ModelVersion, RegisteredModel

from .context import ExportOptions, Selection, selector_tokens
from .endpoints import TrackingSource
from .errors import ArchiveError
from .objects import evaluation_datasets
from .objects.registry import LOGGED_MODEL_URI
from .streams import redact_uri


def _resolve(selector: str, list_all, find_one, name_of, key_of) -> list:
    """Objects named by ``all``, ``prefix*`` patterns and exact names (or IDs), in one list without repeats."""
    everything = None
    chosen: dict = {}
    for token in selector_tokens(selector):
        if token == "all" or token.endswith("*"):
            if everything is None:
                everything = list(list_all())
            prefix = "" if token == "all" else token[:-1]
            chosen.update({key_of(o): o for o in everything if name_of(o).startswith(prefix)})
        else:
            found = find_one(token)
            if found is not None:
                chosen[key_of(found)] = found
    return list(chosen.values())


def select_experiments(source: TrackingSource, selector: str, include_deleted: bool) -> list[Experiment]:
    def find(token: str) -> Experiment | None:
        found = source.experiment(token)
        if found is None:
            raise ArchiveError(f"No experiment named or numbered {token!r} on {redact_uri(source.uri)}; check --experiments.")
        return found if include_deleted or found.lifecycle_stage == LifecycleStage.ACTIVE else None

    chosen = _resolve(selector, lambda: source.experiments(include_deleted), find, lambda e: e.name, lambda e: e.experiment_id)
    return sorted(chosen, key=lambda e: (len(e.experiment_id), e.experiment_id))


def _select_models(source: TrackingSource, selector: str, options: ExportOptions) -> list[tuple[RegisteredModel, list[ModelVersion]]]:
    def find(token: str) -> RegisteredModel:
        model = source.registered_model(token)
        if model is None or model._is_prompt():
            raise ArchiveError(f"No registered model named {token!r} on the source; check --models.")
        return model

    chosen = _resolve(selector, source.registered_models, find, lambda m: m.name, lambda m: m.name)
    return [(m, _filter_versions(list(source.model_versions(m.name)), options)) for m in sorted(chosen, key=lambda m: m.name)]


def select_prompts(source: TrackingSource, selector: str) -> Iterable[RegisteredModel]:
    """The prompts a selector names (checked now); ``all`` is read page by page during the export."""
    if selector.strip() == "all":
        return source.prompts()

    def find(token: str) -> RegisteredModel:
        prompt = source.prompt(token)
        if prompt is None:
            raise ArchiveError(f"No prompt named {token!r} on the source; check --prompts.")
        return prompt

    return sorted(_resolve(selector, source.prompts, find, lambda p: p.name, lambda p: p.name), key=lambda p: p.name)


def _filter_versions(versions: list[ModelVersion], options: ExportOptions) -> list[ModelVersion]:
    if options.versions:
        wanted = {v.strip() for v in options.versions.split(",")}
        versions = [v for v in versions if str(v.version) in wanted]
    if options.stages:
        stages = {s.strip().lower() for s in options.stages.split(",")}
        versions = [v for v in versions if (v.current_stage or "None").lower() in stages]
    if options.export_latest_versions:
        latest: dict[str, ModelVersion] = {}
        for v in versions:
            stage = v.current_stage or "None"
            if stage not in latest or int(v.version) > int(latest[stage].version):
                latest[stage] = v
        versions = list(latest.values())
    return sorted(versions, key=lambda v: int(v.version))


def plan(source: TrackingSource, options: ExportOptions) -> Selection:
    named_experiments = options.experiments is not None
    named_models = options.models is not None
    named_logged = options.logged_models is not None
    named_prompts = options.prompts is not None
    named_datasets = options.evaluation_datasets is not None
    named_traces = options.traces is not None and options.traces.strip() != "all"
    everything = not (named_experiments or named_models or named_logged or named_prompts or named_datasets or named_traces)
    selection = Selection(everything=everything)
    if not options.no_prompts and (named_prompts or everything):
        selection.prompts = select_prompts(source, options.prompts or "all")
    chosen: dict[str, Experiment] = {}
    if named_experiments or everything:
        for experiment in select_experiments(source, options.experiments or "all", options.export_deleted_experiments):
            chosen[experiment.experiment_id] = experiment
        selection.full_experiment_ids = set(chosen)
    if named_logged and options.logged_models.strip() != "all":
        selection.logged_model_ids = set(selector_tokens(options.logged_models))
    if named_models or everything:
        selection.registered_models = _select_models(source, options.models or "all", options)

    dependency_models = set(selection.logged_model_ids or ()) if named_logged and not named_experiments else set()
    dependency_runs: set[str] = set()
    for _, versions in selection.registered_models:
        for version in versions:
            match = LOGGED_MODEL_URI.match(version.source or "")
            if version.model_id or match:
                dependency_models.add(version.model_id or match.group(1))
            if version.run_id:
                dependency_runs.add(version.run_id)
    if not source.has("logged_models"):
        dependency_models = set()  # MLflow 2.x: no logged models to depend on
    for model_id in dependency_models:
        model = source.logged_model(model_id)
        if model is None:
            continue
        _add_dependency(source, selection, chosen, model.experiment_id, options)
        if model.experiment_id not in selection.full_experiment_ids:
            selection.extra_logged_models.add(model_id)
        if model.source_run_id:
            dependency_runs.add(model.source_run_id)
    for experiment_id in set(evaluation_datasets.dependency_experiments(source, options)):
        _add_dependency(source, selection, chosen, experiment_id, options)
    for run_id in dependency_runs:
        run = source.run(run_id)
        if run is None or (run.info.lifecycle_stage == "deleted" and not options.export_deleted_runs):
            continue
        _add_dependency(source, selection, chosen, run.info.experiment_id, options)
        if run.info.experiment_id not in selection.full_experiment_ids or not _in_window(run.info.start_time, options):
            selection.extra_runs.setdefault(run.info.experiment_id, set()).add(run_id)
    if named_traces:
        selection.trace_ids = selector_tokens(options.traces)
        for start in range(0, len(selection.trace_ids), 100):
            batch = selection.trace_ids[start : start + 100]
            infos = source.trace_infos(batch)
            missing = set(batch) - {i.trace_id for i in infos}
            if missing:
                raise ArchiveError(f"No trace {sorted(missing)[0]!r} on {redact_uri(source.uri)}; check --traces.")
            for info in infos:
                _add_dependency(source, selection, chosen, info.experiment_id, options)
    selection.experiments = sorted(chosen.values(), key=lambda e: (len(e.experiment_id), e.experiment_id))
    return selection


def _add_dependency(source, selection: Selection, chosen: dict, experiment_id: str, options: ExportOptions) -> None:
    if experiment_id in chosen:
        return
    chosen[experiment_id] = source.client.get_experiment(experiment_id)
    if options.export_all_runs:
        selection.full_experiment_ids.add(experiment_id)


def _in_window(start_time: int | None, options: ExportOptions) -> bool:
    start = start_time or 0
    after = options.run_start_time is None or start >= options.run_start_time
    before = options.runs_until is None or start < options.runs_until
    return after and before
