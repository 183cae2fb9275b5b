"""``export_archive``: read a tracking server and write one archive."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from .archive import ArchiveWriter
from .context import ExportContext, ExportOptions
from .database_source import open_source
from .endpoints import TrackingSource, stopped_error
from .errors import ArchiveError
from .objects import OBJECT_MODULES, runs
from .selection import plan
from .streams import open_output
from .summary import Progress, Summary


def parse_time(text: str | None, option: str) -> int | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS``, UTC, to epoch milliseconds."""
    if not text:
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(text.strip(), pattern).replace(tzinfo=timezone.utc)
            return int(parsed.timestamp() * 1000)
        except ValueError:
            continue
    raise ArchiveError(f"{option} {text!r} is not a UTC time like 2026-01-31 or '2026-01-31 13:45:00'.")


def export_archive(
    output: str,
    tracking_uri: str | None = None,
    experiments: str | None = None,
    models: str | None = None,
    logged_models: str | None = None,
    prompts: str | None = None,
    no_prompts: bool = False,
    run_start_time: str | None = None,
    runs_until: str | None = None,
    export_deleted_runs: bool = False,
    export_deleted_experiments: bool = False,
    export_all_runs: bool = False,
    export_latest_versions: bool = False,
    stages: str | None = None,
    versions: str | None = None,
    export_version_model: bool = False,
    evaluation_datasets: str | None = None,
    no_evaluation_datasets: bool = False,
    traces: str | None = None,
    no_traces: bool = False,
    traces_since: str | None = None,
    traces_until: str | None = None,
    no_webhooks: bool = False,
    no_scorers: bool = False,
    no_label_schemas: bool = False,
    no_issues: bool = False,
    artifacts_destination: str | None = None,
    workers: int = 4,
    quiet: bool = True,
    allow_missing_kinds: bool = False,
) -> Summary:
    """Export a tracking server, or a selection of it, to ``output``: a path, ``-`` or a URI.

    With no selector everything is exported; see ``selection.py`` for how
    ``experiments``, ``models``, ``logged_models``, ``prompts`` and ``evaluation_datasets`` combine.
    A database URI is read directly, inside one read-only snapshot (``database_source.py``);
    ``artifacts_destination`` is then where its ``mlflow-artifacts:/`` URIs point.
    What the source holds that the archive has no kind for is named in the summary, which then fails
    unless ``allow_missing_kinds`` (``coverage.py``).

    >>> summary = export_archive("backup.mlar", tracking_uri="http://127.0.0.1:5000")  # doctest: +SKIP
    >>> summary.counts["runs"].exported  # doctest: +SKIP
    """
    options = ExportOptions(
        experiments=experiments,
        models=models,
        logged_models=logged_models,
        prompts=prompts,
        no_prompts=no_prompts,
        run_start_time=parse_time(run_start_time, "--run-start-time"),
        runs_until=parse_time(runs_until, "--runs-until"),
        export_deleted_runs=export_deleted_runs,
        export_deleted_experiments=export_deleted_experiments,
        export_all_runs=export_all_runs,
        export_latest_versions=export_latest_versions,
        stages=stages,
        versions=versions,
        export_version_model=export_version_model,
        evaluation_datasets=evaluation_datasets,
        no_evaluation_datasets=no_evaluation_datasets,
        traces=traces,
        no_traces=no_traces,
        traces_since=parse_time(traces_since, "--traces-since"),
        traces_until=parse_time(traces_until, "--traces-until"),
        no_webhooks=no_webhooks,
        no_scorers=no_scorers,
        no_label_schemas=no_label_schemas,
        no_issues=no_issues,
        artifacts_destination=artifacts_destination,
        workers=max(1, workers),
    )
    started = time.time()
    source = open_source(tracking_uri, artifacts_destination)
    summary = Summary("export", allow_uncarried=allow_missing_kinds)
    progress = Progress(quiet)
    try:
        source.check_reachable()
        with source.as_process_default():
            selection = _read(source, lambda: plan(source, options))
        source.check_artifacts(selection.experiments)
        for note in source.notes:  # after the artifacts check, which may add one
            summary.note(note)
        for uncarried in _read(source, lambda: source.uncarried(selection.experiments, selection.everything)):
            summary.leave_out(uncarried)
        with source.as_process_default(), tempfile.TemporaryDirectory(prefix="mlflow-archive-") as workdir, ThreadPoolExecutor(
            options.workers
        ) as pool, open_output(output) as stream:
            ctx = ExportContext(
                source=source, writer=None, options=options, summary=summary, progress=progress,
                pool=pool, workdir=Path(workdir), cutoff_ms=int(started * 1000), selection=selection,
            )
            header = {
                "source": source.describe(),
                "export": {
                    "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                    "started_at_ms": ctx.cutoff_ms,
                    "cutoff_time_ms": ctx.cutoff_ms,
                    "options": options.to_json(),
                    "running_runs": _read(source, lambda: runs.running_at_cutoff(ctx)),
                },
            }
            ctx.writer = ArchiveWriter(stream, header, mtime=int(started))
            for module in OBJECT_MODULES:
                # A kind the source does not have (logged models on MLflow 2.x, ...) is simply empty.
                if source.has(module.SECTION):
                    _read(source, lambda: module.export(ctx))
                else:
                    summary.skip_kind(module.SECTION, source.lacks(module.SECTION))
            ctx.writer.close()
            summary.archive_bytes = ctx.writer.bytes_written
    finally:
        progress.close()
        source.close()
    summary.seconds = time.time() - started
    return summary


def _read(source: TrackingSource, step):
    try:
        return step()
    except ArchiveError:
        raise
    except Exception as exc:
        raise stopped_error(exc, source.uri, "export from", "the archive was not completed") from exc
