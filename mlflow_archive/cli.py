"""The `mlflow archive` command group (also installed as `mlflow-archive`).

Each command parses options, calls one public function, and reports. Errors
from the archive or the server are printed as one sentence, never a traceback.
"""

from __future__ import annotations

import functools
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
    pass


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
