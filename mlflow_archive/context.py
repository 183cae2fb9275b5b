"""State shared by the object-type modules during one export or one import."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from mlflow.entities import Experiment
from mlflow.entities.model_registry import ModelVersion, RegisteredModel

from .archive import ArchiveWriter
from .endpoints import (
    TrackingDestination,
    TrackingSource,
    server_failure_error,
    server_trouble,
)
from .errors import ArchiveError
from .idmap import IdMap
from .summary import Progress, Summary

T = TypeVar("T")
R = TypeVar("R")

PROVENANCE_PREFIX = "mlflow_archive."
SOURCE_TAG_PREFIX = "mlflow_archive.source."


def selector_tokens(selector: str) -> list[str]:
    """Comma-separated names, IDs or ``prefix*`` patterns, or a ``.txt`` file with one per line."""
    selector = selector.strip()
    if selector.endswith(".txt") and Path(selector).is_file():
        raw = Path(selector).read_text(encoding="utf-8").splitlines()
    else:
        raw = selector.split(",")
    return [t.strip() for t in raw if t.strip() and not t.strip().startswith("#")]


@dataclass
class Selection:
    """What an export takes (built by ``selection.plan``)."""

    experiments: list[Experiment] = field(default_factory=list)
    full_experiment_ids: set[str] = field(default_factory=set)  # all their runs (in the time window)
    extra_runs: dict[str, set[str]] = field(default_factory=dict)  # experiment ID -> further run IDs
    logged_model_ids: set[str] | None = None  # None: every logged model of the full experiments
    extra_logged_models: set[str] = field(default_factory=set)
    registered_models: list[tuple[RegisteredModel, list[ModelVersion]]] = field(default_factory=list)
    prompts: Iterable[RegisteredModel] = ()  # read lazily when all are exported
    everything: bool = False  # no selector was given
    trace_ids: list[str] | None = None  # None: every trace of the full experiments

    def wants_logged_model(self, experiment_id: str, model_id: str) -> bool:
        if model_id in self.extra_logged_models:
            return True
        return experiment_id in self.full_experiment_ids and (
            self.logged_model_ids is None or model_id in self.logged_model_ids
        )


@dataclass
class ExportOptions:
    experiments: str | None = None  # None: see selection.py for what each combination means
    models: str | None = None
    logged_models: str | None = None
    prompts: str | None = None
    no_prompts: bool = False
    run_start_time: int | None = None  # ms, inclusive
    runs_until: int | None = None  # ms, exclusive
    export_deleted_runs: bool = False
    export_deleted_experiments: bool = False
    export_all_runs: bool = False
    export_latest_versions: bool = False
    stages: str | None = None
    versions: str | None = None
    export_version_model: bool = False
    evaluation_datasets: str | None = None  # None: the datasets of the exported experiments (selection.py)
    no_evaluation_datasets: bool = False
    traces: str | None = None  # None or "all": every trace of the exported experiments
    no_traces: bool = False
    traces_since: int | None = None  # ms, inclusive
    traces_until: int | None = None  # ms, exclusive
    no_webhooks: bool = False
    no_scorers: bool = False
    no_label_schemas: bool = False
    no_issues: bool = False
    artifacts_destination: str | None = None  # a database source: where its mlflow-artifacts:/ URIs point
    workers: int = 4

    def __post_init__(self) -> None:
        # Checked before the source is opened: a contradiction costs no connection.
        for kind in ("prompts", "traces", "evaluation_datasets"):
            if getattr(self, kind) is not None and getattr(self, f"no_{kind}"):
                option = "--" + kind.replace("_", "-")
                raise ArchiveError(f"{option} and --no-{option[2:]} exclude each other; give one of them.")

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ImportOptions:
    experiment_rename: dict[str, str] = field(default_factory=dict)
    model_rename: dict[str, str] = field(default_factory=dict)
    delete_model: bool = False
    delete_prompt: bool = False
    delete_evaluation_dataset: bool = False
    import_source_tags: bool = False
    use_src_user_id: bool = True
    strict: bool = False  # an object kind the destination cannot hold fails the import
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # --secrets-file: kind -> object name -> secret
    allow_missing_secrets: bool = False
    workers: int = 4


class _Context:
    """Runs tasks on the worker pool, in order, with bounded look-ahead."""

    pool: ThreadPoolExecutor
    summary: Summary
    progress: Progress
    workers: int

    def ordered_map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Like ``pool.map`` but keeps at most 2 x workers results pending, so memory stays bounded."""
        pending: list[Future] = []
        for item in items:
            pending.append(self.pool.submit(fn, item))
            if len(pending) >= 2 * self.workers:
                yield self.result(pending.pop(0))
        for future in pending:
            yield self.result(future)

    def result(self, future: Future):
        """A task's result; a server that kept failing it ends the run, in one sentence."""
        try:
            return future.result()
        except Exception as exc:
            if server_trouble(exc):
                raise server_failure_error(self.server_uri, exc) from None
            raise

    @property
    def server_uri(self) -> str:
        raise NotImplementedError


@dataclass
class ExportContext(_Context):
    source: TrackingSource
    writer: ArchiveWriter
    options: ExportOptions
    summary: Summary
    progress: Progress
    pool: ThreadPoolExecutor
    workdir: Path
    cutoff_ms: int
    selection: Selection | None = None
    model_io: list[tuple] = field(default_factory=list)  # (run, direction, model, step): few, kept until logged models

    @property
    def experiments(self) -> list[Experiment]:
        return self.selection.experiments

    @property
    def workers(self) -> int:
        return self.options.workers

    @property
    def server_uri(self) -> str:
        return self.source.uri


@dataclass
class ImportContext(_Context):
    dest: TrackingDestination
    ids: IdMap
    options: ImportOptions
    summary: Summary
    progress: Progress
    pool: ThreadPoolExecutor
    workdir: Path
    header: dict

    @property
    def workers(self) -> int:
        return self.options.workers

    @property
    def server_uri(self) -> str:
        return self.dest.uri

    def check_fatal(self, exc: BaseException) -> None:
        """A server still failing after the retries ends the import; other errors count against one object."""
        if server_trouble(exc):
            raise server_failure_error(self.dest.uri, exc) from None
