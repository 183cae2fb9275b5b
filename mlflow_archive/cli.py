"""The `mlflow archive` command group (also installed as `mlflow-archive`).

Each command parses options, calls one public function, and reports. Errors
from the archive or the server are printed as one sentence, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from . import __version__


def _reports_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .errors import ArchiveError, OutputClosedError

        try:
            return command(*args, **kwargs)
        except ArchiveError as exc:
            _show(f"Error: {exc}", err=True)
            if isinstance(exc, OutputClosedError):
                _drop_stdout()
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; run the same command again to finish.", err=True)
            sys.exit(130)

    return wrapper


def _show(line: str, err: bool = False) -> None:
    """Print one line that may hold text from an archive or a server, its control characters escaped."""
    from .errors import printable

    click.echo(printable(line), err=err)


def _drop_stdout() -> None:
    """Point a closed stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. click's test runner)
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


@click.group(name="archive", help="Export an MLflow server into one archive file, and import it into another.")
@click.version_option(__version__, prog_name="mlflow-archive")
def cli():
    # MLflow's INFO messages (one per run without artifacts, ...) would drown our summary. MLflow
    # sets its level when first imported, so both the environment and the live logger are set.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    _redact_log_records()


def _redact_log_records() -> None:
    """Make every log record (MLflow's, urllib3's, SQLAlchemy's, a driver's) carry its message and traceback text
    redacted, as our own messages are: a record factory sees all of them, whatever handler prints them."""
    from .errors import redact

    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "redacts", False):  # one CLI call after another in the same process
        return

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # arguments that do not fit the message: logging reports that itself when printing
            return record
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    redacted_record.redacts = True
    logging.setLogRecordFactory(redacted_record)


def _archive_location(*flags: str, help: str):
    """The archive as ``ARCHIVE`` or as the option ``flags`` (e.g. ``-i``): every command takes both forms."""

    def decorate(command):
        @functools.wraps(command)
        def merged(*args, archive_argument=None, archive_option=None, **kwargs):
            if archive_argument and archive_option and archive_argument != archive_option:
                raise click.UsageError(f"Two archives given ({archive_argument!r} and {archive_option!r}); give one.")
            if not (archive_argument or archive_option):
                raise click.UsageError(f"Missing the archive: give it as ARCHIVE or with {flags[0]}.")
            return command(*args, archive=archive_argument or archive_option, **kwargs)

        merged = click.argument("archive_argument", metavar="ARCHIVE", required=False)(merged)
        return click.option(*flags, "archive_option", metavar="ARCHIVE", help=help)(merged)

    return decorate


_archive_in = _archive_location("-i", "--input", help="Archive to read: a path, an object-store URI, or - for stdin.")


@cli.command()
@_archive_in
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_reports_errors
def inspect(archive, as_json):
    """Show the header, members and object counts of ARCHIVE (a path, a URI, or - for stdin)."""
    from .archive import descriptive
    from .inspection import inspect_archive

    info = inspect_archive(archive)
    if as_json:
        import orjson

        click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return
    header = info["header"]
    source, export, writer = (descriptive(header, key) for key in ("source", "export", "writer"))
    _show(f"format:        {header['format']} version {info['format_version']} (reader version {header['reader_version']})")
    _show(f"writer:        {writer.get('name')} {writer.get('version')}")
    _show(f"source:        {source.get('tracking_uri')} (MLflow {source.get('mlflow_version')})")
    if isinstance(source.get("object_kinds"), list):
        _show(f"object kinds:  {', '.join(map(str, source['object_kinds']))}")
    if export:
        _show(f"exported:      {export.get('started_at')}")
    if isinstance(source.get("snapshot"), dict):
        _show(f"snapshot:      {source['snapshot'].get('isolation')}: every row as of one instant")
    click.echo("counts:")
    for key, value in sorted(info["counts"].items()):
        _show(f"  {key:<28}{value:>12}")
    click.echo(f"members:\n  {'bytes':>12}  {'rows':>10}  name")
    for member in info["members"]:
        rows = member.get("rows")
        _show(f"  {member['size']:>12}  {'' if rows is None else rows:>10}  {member['name']}")
    if info["ignored_members"]:
        click.echo(f"ignored:       {len(info['ignored_members'])} unknown member(s)")


@cli.command()
@_archive_in
@_reports_errors
def verify(archive):
    """Check every member of ARCHIVE (a path, a URI, or - for stdin) without importing it."""
    from .inspection import verify_archive

    _show(verify_archive(archive).summary())


def _report(summary) -> None:
    for line in summary.lines():
        _show(line, err=True)
    if not summary.ok:
        sys.exit(1)


_tracking_uri = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="Tracking server or store URI. Default: $MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db).",
)
_workers = click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Parallel requests.")
_quiet = click.option("--quiet", is_flag=True, help="No progress line on stderr.")


@cli.command("export")
@_archive_location("-o", "--output", help="Archive to write: a path, an object-store URI, or - for stdout.")
@_tracking_uri
@click.option(
    "--experiments",
    "--experiment-ids",
    help="Experiments: all, comma-separated names or IDs, prefix* patterns, or a .txt file of those.",
)
@click.option("--models", help="Registered models: all, comma-separated names, prefix* patterns, or a .txt file.")
@click.option("--logged-models", help="Logged models: all, or comma-separated model IDs (m-...), or a .txt file.")
@click.option("--prompts", help="Prompts: all, comma-separated names, prefix* patterns, or a .txt file.")
@click.option("--no-prompts", is_flag=True, help="Leave prompts out (an export without selectors includes them all).")
@click.option("--run-start-time", help="Only runs started at or after this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option("--runs-until", help="Only runs started before this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option("--export-deleted-runs", is_flag=True, help="Also export deleted runs (they arrive deleted).")
@click.option("--export-deleted-experiments", is_flag=True, help="Also export deleted experiments (they arrive deleted).")
@click.option("--export-all-runs", is_flag=True, help="With --models: every run of the experiments involved, not only the runs behind the versions.")
@click.option("--export-latest-versions", is_flag=True, help="Only the latest version of each stage.")
@click.option("--stages", help="Only versions in these stages (comma-separated, e.g. Production,Staging).")
@click.option("--versions", help="Only these version numbers (comma-separated).")
@click.option("--export-version-model", is_flag=True, help="Also carry each version's model files, for versions whose source is not exported.")
@click.option(
    "--evaluation-datasets",
    help="GenAI evaluation datasets: all (with --experiments: those linked to them), comma-separated names, or a .txt file. "
    "Default: those of the exported experiments.",
)
@click.option("--no-evaluation-datasets", is_flag=True, help="Leave evaluation datasets out.")
@click.option("--traces", help="Traces: all (default: those of the exported experiments), comma-separated trace IDs, or a .txt file.")
@click.option("--no-traces", is_flag=True, help="Leave traces out.")
@click.option("--traces-since", help="Only traces that started at or after this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option("--traces-until", help="Only traces that started before this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option(
    "--artifacts-destination",
    help="For an export from a database: the --artifacts-destination its server was started with (a folder or an "
    "object-store URI), where the files of mlflow-artifacts:/ URIs are.",
)
@click.option("--no-webhooks", is_flag=True, help="Leave webhooks out (an export without selectors includes them all).")
@click.option("--no-scorers", is_flag=True, help="Leave scorers out (they follow their experiments).")
@click.option("--no-label-schemas", is_flag=True, help="Leave label schemas out (they follow their experiments).")
@click.option("--no-issues", is_flag=True, help="Leave issues out (they follow their experiments).")
@click.option(
    "--allow-missing-kinds",
    is_flag=True,
    help="Succeed although the source holds kinds of objects that the archive does not carry yet (they are named "
    "in the summary either way).",
)
@_workers
@_quiet
@_reports_errors
def export_command(archive, tracking_uri, workers, quiet, **selection):
    """Export a tracking server, or a selection of it, into one archive.

    With no selector, everything is exported. --experiments alone exports those
    experiments; --models alone exports those models and the runs, logged models
    and experiments their versions depend on; --prompts adds prompts to either.
    """
    from .exporting import export_archive

    _report(export_archive(archive, tracking_uri=tracking_uri, workers=workers, quiet=quiet, **selection))


@cli.command("import")
@_archive_in
@_tracking_uri
@click.option("--experiment-rename-file", type=click.Path(dir_okay=False), help="CSV of old,new experiment names.")
@click.option("--model-rename-file", type=click.Path(dir_okay=False), help="CSV of old,new registered model names.")
@click.option("--delete-model", is_flag=True, help="Delete an existing registered model of the same name, and its versions, first.")
@click.option("--delete-prompt", is_flag=True, help="Replace an existing prompt of the same name (default: leave it and skip the archive's).")
@click.option(
    "--delete-evaluation-dataset", is_flag=True,
    help="Replace an existing evaluation dataset of the same name (default: leave it, and skip the archive's).",
)
@click.option("--import-source-tags", is_flag=True, help="Also keep source IDs, times and URI as mlflow_archive.source.* tags.")
@click.option(
    "--use-src-user-id/--no-use-src-user-id",
    default=True,
    show_default=True,
    help="Keep each run's source user (the server may override it when it enforces authentication).",
)
@click.option(
    "--artifacts-destination",
    help="For a database or file-store destination: where the artifacts of the experiments it creates go "
    "(a local path or an object-store URI). Default: MLflow's own, ./mlruns of the working folder.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check a file or object-store archive whole before writing anything (a stream, -, is checked as it is read).",
)
@click.option("--strict", is_flag=True, help="Fail (non-zero exit) if the destination cannot hold an object kind of the archive, "
              "or an object of the destination's own was left as it is.")
@click.option(
    "--secrets-file", type=click.Path(dir_okay=False),
    help='JSON with the secrets an archive cannot carry: {"webhooks": {"<webhook name>": "<secret>"}}.',
)
@click.option("--allow-missing-secrets", is_flag=True, help="Succeed although webhooks were created without their signing secret.")
@_workers
@_quiet
@_reports_errors
def import_command(archive, tracking_uri, experiment_rename_file, model_rename_file, delete_model, delete_prompt,
                   delete_evaluation_dataset, import_source_tags, use_src_user_id, artifacts_destination, verify, strict,
                   secrets_file, allow_missing_secrets, workers, quiet):
    """Replay an archive into a tracking server; importing the same archive again creates nothing new."""
    from .importing import import_archive

    _report(
        import_archive(
            archive,
            tracking_uri=tracking_uri,
            experiment_rename=experiment_rename_file,
            model_rename=model_rename_file,
            delete_model=delete_model,
            delete_prompt=delete_prompt,
            delete_evaluation_dataset=delete_evaluation_dataset,
            import_source_tags=import_source_tags,
            use_src_user_id=use_src_user_id,
            artifacts_destination=artifacts_destination,
            verify=verify,
            strict=strict,
            secrets=secrets_file,
            allow_missing_secrets=allow_missing_secrets,
            workers=workers,
            quiet=quiet,
        )
    )


@cli.command("restore")
@_archive_in
@click.option("--tracking-uri", required=True,
              help="Database to write: a SQLAlchemy URI that MLflow's SQL store accepts (sqlite:///new.db, postgresql://...).")
@click.option("--artifacts-destination", required=True, type=click.Path(file_okay=False),
              help="Folder for the files of runs, logged models, traces and model versions, as given to "
              "`mlflow server --artifacts-destination` on the restored database.")
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the archive whole before writing anything.",
)
@click.option("--strict", is_flag=True, help="Fail (non-zero exit) if an object of the destination's own was left as it is.")
@_quiet
@_reports_errors
def restore_command(archive, tracking_uri, artifacts_destination, verify, strict, quiet):
    """Write an archive into a database with every ID and time kept (an exact copy; see also import)."""
    from .restoring import restore_archive

    _report(restore_archive(archive, tracking_uri=tracking_uri, artifacts_destination=artifacts_destination,
                            verify=verify, strict=strict, quiet=quiet))


@cli.command()
@_tracking_uri
@click.option("--runs", type=click.IntRange(1, 1000), default=3, show_default=True)
@_reports_errors
def demo(tracking_uri, runs):
    """Log a few sample runs (experiment mlflow-archive-demo), to try export on an empty store."""
    from .demo import DEMO_EXPERIMENT, log_demo_runs

    log_demo_runs(tracking_uri, runs=runs)
    click.echo(f"Logged {runs} sample runs in experiment {DEMO_EXPERIMENT}.", err=True)
