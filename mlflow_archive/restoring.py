"""``restore_archive``: an exact copy of an archive in a tracking database, IDs and times kept.

Where ``import`` replays an archive through a server's REST API (new IDs, the server's
times), ``restore`` writes the rows itself through the installed MLflow's ORM tables (traces
through MLflow's own SQL store, which derives much from their spans). Before the first write,
one pass over the archive checks that no ID it holds is taken in the destination by something else,
and that what the database must keep as the archive has it (experiment IDs, JSON, statuses, rows
without a repeated identity) can be kept: an archive that fails refuses the restore with nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from .archive import ROW_CHECKED, ArchiveReader, descriptive
from .database import DatabaseDestination, reason
from .errors import ArchiveError
from .inspection import verify_archive
from .restore import RestoreContext
from .restore import (
    evaluation_datasets, experiments, issues, label_schemas, logged_models, prompts, registry, runs, scorers, traces, webhooks,
)
from .streams import open_input
from .summary import Progress, Summary

RESTORERS = (experiments, runs, logged_models, registry, prompts, traces, evaluation_datasets, webhooks, scorers, label_schemas, issues)


def restore_archive(
    input: str,
    tracking_uri: str,
    artifacts_destination: str,
    verify: bool = True,
    strict: bool = False,
    quiet: bool = True,
) -> Summary:
    """Write the archive at ``input`` (a path or URI) into the database ``tracking_uri`` with every ID and time kept.

    ``artifacts_destination`` is the folder a ``mlflow server --backend-store-uri <tracking_uri>
    --artifacts-destination <folder>`` serves files from; the files of runs, logged models, traces (kept as
    ``traces.json``) and carried model versions are written there. The database gets MLflow's schema
    when empty; one at another schema revision is refused. Rows already present with the same content
    are skipped (a killed restore finishes when run again); a conflicting ID stops the restore before
    it writes anything. Runs the archive puts in an experiment of the destination's own (one it names without
    holding it) are not written; a note names that experiment, and with ``strict`` the summary is not ``ok``.

    >>> restore_archive("backup.mlar", "sqlite:///new.db", "./mlartifacts")  # doctest: +SKIP
    """
    if input == "-":
        raise ArchiveError("restore reads the archive twice (a check, then the writes), so it needs a file or URI, not a stream (-).")
    started = time.time()
    if verify:
        verify_archive(input)
    db = DatabaseDestination(tracking_uri)
    summary = Summary("restore", strict=strict)
    progress = Progress(quiet)
    ctx = RestoreContext(db=db, artifacts=Path(artifacts_destination), summary=summary, progress=progress,
                         deleted_time=_export_start(input))
    try:
        restorers = {module.SECTION: module.Restorer(ctx) for module in RESTORERS}
        # Every refusal before the first write, SQLite's pragmas included; a database without MLflow's schema
        # holds no row the archive's could collide with (its lookups find nothing), but the archive's own values
        # are checked all the same.
        db.check_schema()
        _replay(input, restorers, check=True)
        db.prepare()
        _replay(input, restorers, check=False)
        db.advance_sequences()
    except SQLAlchemyError as exc:
        raise ArchiveError(
            f"The database {db.uri} failed a write ({reason(exc)}); "
            "what was committed stays, and the same command finishes the restore once the cause is fixed."
        ) from None
    finally:
        progress.close()
        ctx.close()
        db.close()
    summary.seconds = time.time() - started
    return summary


def _export_start(input: str) -> int | None:
    """The archive's export start (ms): its deleted runs were deleted by then."""
    with open_input(input) as stream:
        started = descriptive(ArchiveReader(stream).header, "export").get("started_at_ms")
    # A descriptive field (FORMAT.md 8): of another type, or beyond a database's integers, it is as if absent.
    return started if type(started) is int and 0 <= started < 2**63 else None


def _replay(input: str, restorers: dict, check: bool) -> None:
    with open_input(input) as stream:
        current = None
        for member in ArchiveReader(stream):
            restorer = restorers[member.section]  # one for every section of the format
            if check:
                restorer.check(member)
                if member.stem in ROW_CHECKED:
                    member.read_table()  # the reader's row checks (FORMAT.md 12.2) come before the first write, verified or not
                continue
            if current is not None and current != (member.section, member.chunk):
                restorers[current[0]].end_chunk()
            current = (member.section, member.chunk)
            restorer.member(member)
        if current is not None:
            restorers[current[0]].end_chunk()
