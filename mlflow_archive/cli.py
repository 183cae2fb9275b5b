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
        from .errors import ArchiveError

        try:
            return command(*args, **kwargs)
        except ArchiveError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted; run the same command again to finish.", err=True)
            sys.exit(130)

    return wrapper


@click.group(name="archive", help="Export an MLflow server into one archive file, and import it into another.")
@click.version_option(__version__, prog_name="mlflow-archive")
def cli():
    # MLflow's INFO messages (one per run without artifacts, ...) would drown our summary. MLflow
    # sets its level when first imported, so both the environment and the live logger are set.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


@cli.command()
@click.argument("archive")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_reports_errors
def inspect(archive, as_json):
    """Show the header, members and object counts of ARCHIVE (a path, a URI, or - for stdin)."""
    from .inspection import inspect_archive

    info = inspect_archive(archive)
    if as_json:
        import orjson

        click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return
    header = info["header"]
    source = header.get("source", {})
    export = header.get("export", {})
    click.echo(f"format:        {header['format']} version {info['format_version']} (reader version {header['reader_version']})")
    click.echo(f"writer:        {header['writer'].get('name')} {header['writer'].get('version')}")
    click.echo(f"source:        {source.get('tracking_uri')} (MLflow {source.get('mlflow_version')})")
    if source.get("object_kinds") is not None:
        click.echo(f"object kinds:  {', '.join(source['object_kinds'])}")
    if export:
        click.echo(f"exported:      {export.get('started_at')}")
    click.echo("counts:")
    for key, value in sorted(info["counts"].items()):
        click.echo(f"  {key:<28}{value:>12}")
    click.echo("members:")
    for member in info["members"]:
        rows = member.get("rows")
        click.echo(f"  {member['size']:>12}  {'' if rows is None else rows:>10}  {member['name']}")
    if info["ignored_members"]:
        click.echo(f"ignored:       {len(info['ignored_members'])} unknown member(s)")


@cli.command()
@click.argument("archive")
@_reports_errors
def verify(archive):
    """Check every member of ARCHIVE (a path, a URI, or - for stdin) without importing it."""
    from .inspection import verify_archive

    click.echo(verify_archive(archive).summary())


def _report(summary) -> None:
    for line in summary.lines():
        click.echo(line, err=True)
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
@click.option("-o", "--output", required=True, help="Archive to write: a path, an object-store URI, or - for stdout.")
@_tracking_uri
@click.option(
    "--experiments",
    "--experiment-ids",
    help="Experiments: all, comma-separated names or IDs, prefix* patterns, or a .txt file of those.",
)
@click.option("--models", help="Registered models: all, comma-separated names, prefix* patterns, or a .txt file.")
@click.option("--logged-models", help="Logged models: all, or comma-separated model IDs (m-...), or a .txt file.")
@click.option("--run-start-time", help="Only runs started at or after this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option("--runs-until", help="Only runs started before this UTC time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option("--export-deleted-runs", is_flag=True, help="Also export deleted runs (they arrive deleted).")
@click.option("--export-deleted-experiments", is_flag=True, help="Also export deleted experiments (they arrive deleted).")
@click.option("--export-all-runs", is_flag=True, help="With --models: every run of the experiments involved, not only the runs behind the versions.")
@click.option("--export-latest-versions", is_flag=True, help="Only the latest version of each stage.")
@click.option("--stages", help="Only versions in these stages (comma-separated, e.g. Production,Staging).")
@click.option("--versions", help="Only these version numbers (comma-separated).")
@click.option("--export-version-model", is_flag=True, help="Also carry each version's model files, for versions whose source is not exported.")
@_workers
@_quiet
@_reports_errors
def export_command(output, tracking_uri, workers, quiet, **selection):
    """Export a tracking server, or a selection of it, into one archive.

    With no selector, everything is exported. --experiments alone exports those
    experiments; --models alone exports those models and the runs, logged models
    and experiments their versions depend on.
    """
    from .exporting import export_archive

    _report(export_archive(output, tracking_uri=tracking_uri, workers=workers, quiet=quiet, **selection))


@cli.command("import")
@click.option("-i", "--input", "input_", required=True, help="Archive to read: a path, an object-store URI, or - for stdin.")
@_tracking_uri
@click.option("--experiment-rename-file", type=click.Path(dir_okay=False), help="CSV of old,new experiment names.")
@click.option("--model-rename-file", type=click.Path(dir_okay=False), help="CSV of old,new registered model names.")
@click.option("--delete-model", is_flag=True, help="Delete an existing registered model of the same name, and its versions, first.")
@click.option("--import-source-tags", is_flag=True, help="Also keep source IDs, times and URI as mlflow_archive.source.* tags.")
@click.option(
    "--use-src-user-id/--no-use-src-user-id",
    default=True,
    show_default=True,
    help="Keep each run's source user (the server may override it when it enforces authentication).",
)
@click.option("--strict", is_flag=True, help="Fail (non-zero exit) if the destination cannot hold an object kind of the archive.")
@_workers
@_quiet
@_reports_errors
def import_command(input_, tracking_uri, experiment_rename_file, model_rename_file, delete_model, import_source_tags,
                   use_src_user_id, strict, workers, quiet):
    """Replay an archive into a tracking server; importing the same archive again creates nothing new."""
    from .importing import import_archive

    _report(
        import_archive(
            input_,
            tracking_uri=tracking_uri,
            experiment_rename=experiment_rename_file,
            model_rename=model_rename_file,
            delete_model=delete_model,
            import_source_tags=import_source_tags,
            use_src_user_id=use_src_user_id,
            strict=strict,
            workers=workers,
            quiet=quiet,
        )
    )


@cli.command()
@_tracking_uri
@click.option("--runs", type=click.IntRange(1, 1000), default=3, show_default=True)
@_reports_errors
def demo(tracking_uri, runs):
    """Log a few sample runs (experiment mlflow-archive-demo), to try export on an empty store."""
    from .demo import DEMO_EXPERIMENT, log_demo_runs

    log_demo_runs(tracking_uri, runs=runs)
    click.echo(f"Logged {runs} sample runs in experiment {DEMO_EXPERIMENT}.", err=True)
