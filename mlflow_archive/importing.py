"""``import_archive``: replay an archive into a tracking server in one pass."""

from __future__ import annotations

import csv
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from .archive import ArchiveReader
from .context import ImportContext, ImportOptions
from .database_source import open_destination
from .endpoints import stopped_error
from .errors import ArchiveError, DamagedArchiveError, UnwritableArchiveError
from .idmap import IdMap
from .inspection import verify_archive
from .objects import OBJECT_MODULES
from .objects._common import ChunkReplay
from .streams import open_input
from .summary import Progress, Summary


def read_rename_file(path: str | None, option: str) -> dict[str, str]:
    """A CSV of ``old,new`` lines (a header line ``old,new`` is allowed)."""
    if not path:
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row and not row[0].startswith("#")]
    except OSError as exc:
        raise ArchiveError(f"Cannot read {option} {path}: {exc.strerror}.") from None
    if rows and [c.strip().lower() for c in rows[0]] == ["old", "new"]:
        rows = rows[1:]
    bad = [row for row in rows if len(row) != 2]
    if bad:
        raise ArchiveError(f"{option} {path} has a line that is not 'old,new': {','.join(bad[0])!r}.")
    return {old.strip(): new.strip() for old, new in rows}


def read_secrets_file(path: str | None) -> dict[str, dict[str, str]]:
    """``--secrets-file``: a JSON object ``{"webhooks": {"<webhook name>": "<secret>"}}``; its contents never reach a
    message or the summary."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            secrets = orjson.loads(fh.read())
    except OSError as exc:
        raise ArchiveError(f"Cannot read --secrets-file {path}: {exc.strerror}.") from None
    except orjson.JSONDecodeError:
        raise ArchiveError(f"--secrets-file {path} is not JSON; it holds an object like {SECRETS_EXAMPLE}.") from None
    webhooks = secrets.get("webhooks", {}) if isinstance(secrets, dict) else None
    if not isinstance(webhooks, dict) or not all(isinstance(v, str) for v in webhooks.values()):
        raise ArchiveError(f"--secrets-file {path} is not an object like {SECRETS_EXAMPLE}.")
    return {"webhooks": webhooks}


SECRETS_EXAMPLE = '{"webhooks": {"<webhook name>": "<secret>"}}'


def import_archive(
    input: str,
    tracking_uri: str | None = None,
    experiment_rename: dict[str, str] | str | None = None,
    model_rename: dict[str, str] | str | None = None,
    delete_model: bool = False,
    delete_prompt: bool = False,
    delete_evaluation_dataset: bool = False,
    import_source_tags: bool = False,
    use_src_user_id: bool = True,
    artifacts_destination: str | None = None,
    verify: bool = True,
    strict: bool = False,
    secrets: dict[str, dict[str, str]] | str | None = None,
    allow_missing_secrets: bool = False,
    workers: int = 4,
    quiet: bool = True,
) -> Summary:
    """Replay the archive at ``input`` (a path, ``-`` or a URI) into a tracking server.

    Objects already imported from the same source are recognised by their
    provenance tags and skipped, so running the same import twice creates nothing new.
    A file or object-store archive is checked whole before anything is written (``verify``);
    a stream (``-``) can only be checked as it is read.
    Object kinds the destination cannot hold (logged models on MLflow 2.x, ...) are skipped,
    one line each in the summary; with ``strict`` such a skip makes the summary not ``ok``.
    ``secrets`` (a dict, or the path of a ``--secrets-file``) gives webhooks their signing secrets
    (``objects/webhooks.py``); a webhook left without one fails the summary unless ``allow_missing_secrets``.

    >>> summary = import_archive("backup.mlar", tracking_uri="http://127.0.0.1:5001")  # doctest: +SKIP
    >>> summary.ok  # doctest: +SKIP
    """
    if not isinstance(experiment_rename, dict):
        experiment_rename = read_rename_file(experiment_rename, "--experiment-rename-file")
    if not isinstance(model_rename, dict):
        model_rename = read_rename_file(model_rename, "--model-rename-file")
    if not isinstance(secrets, dict):
        secrets = read_secrets_file(secrets)
    options = ImportOptions(
        experiment_rename=experiment_rename,
        model_rename=model_rename,
        delete_model=delete_model,
        delete_prompt=delete_prompt,
        delete_evaluation_dataset=delete_evaluation_dataset,
        import_source_tags=import_source_tags,
        use_src_user_id=use_src_user_id,
        strict=strict,
        secrets=secrets,
        allow_missing_secrets=allow_missing_secrets,
        workers=max(1, workers),
    )
    started = time.time()
    if verify and input != "-":
        verify_archive(input)  # a damaged file is refused before the destination is touched
    summary = Summary("import", strict=strict)
    with open_input(input) as stream:
        reader = ArchiveReader(stream)  # reads and checks the header: a foreign file never reaches the destination
        dest = open_destination(tracking_uri, artifacts_destination)
        dest.check_reachable()
        progress = Progress(quiet)
        ids = IdMap()
        try:
            with dest.as_process_default(), tempfile.TemporaryDirectory(prefix="mlflow-archive-") as workdir, ThreadPoolExecutor(
                options.workers
            ) as pool:
                ctx = ImportContext(
                    dest=dest, ids=ids, options=options, summary=summary, progress=progress,
                    pool=pool, workdir=Path(workdir), header=reader.header,
                )
                _replay(ctx, reader)
                experiments = summary.counts.get("experiments")
                if dest.artifact_root and experiments and experiments.created:
                    summary.note(f"artifacts of the experiments this import created go under {dest.artifact_root}")
                summary.archive_bytes = sum(m.size for m in reader.seen)
                if reader.ignored:
                    summary.note(f"{len(reader.ignored)} member(s) of a newer format were ignored")
        except ArchiveError:
            raise
        except Exception as exc:
            raise stopped_error(exc, dest.uri, "import into", "run the same command again to finish") from exc
        finally:
            progress.close()
            ids.close()
    summary.seconds = time.time() - started
    return summary


def _replay(ctx: ImportContext, reader: ArchiveReader) -> None:
    modules = {module.SECTION: module for module in OBJECT_MODULES}
    # Only kinds the destination can hold get an importer: the others are skipped as a whole.
    importers = {section: module.Importer(ctx) for section, module in modules.items() if ctx.dest.has(section)}
    current = None
    skipped: dict[str, int] = {}
    try:
        for member in reader:
            importer = importers.get(member.section)
            if importer is None:
                skipped[member.section] = skipped.get(member.section, 0) + 1
                continue
            if current is not None and current != (member.section, member.chunk):
                _end_chunk(importers[current[0]], section_ends=current[0] != member.section)
            current = (member.section, member.chunk)
            importer.member(member)
    except DamagedArchiveError as exc:
        # Found only as it was read (a stream, or --no-verify). The earlier chunks are whole: their writes are
        # finished, so a rerun skips them rather than replacing them. The open chunk's objects stay partial.
        if current is not None and isinstance(importers[current[0]], ChunkReplay):
            importers[current[0]].drain()
        started = len(getattr(importers[current[0]], "current", ())) if current else 0
        if not started:
            raise
        remedy = ("importing this archive again fails the same way" if isinstance(exc, UnwritableArchiveError)
                  else "the same command with a good copy of the archive finishes them")
        raise type(exc)(
            f"{str(exc).rstrip('.')}; {started} {current[0]} object(s) it had started were left partial, and {remedy}."
        ) from None
    if current is not None:
        _end_chunk(importers[current[0]], section_ends=True)
    for importer in importers.values():
        importer.finish()
    for section, count in skipped.items():
        if section in modules:
            ctx.summary.skip_kind(section, f"{ctx.dest.lacks(section)} ({count} archive member(s) not imported)")
        else:
            ctx.summary.note(f"{count} {section} member(s) were not imported: this version cannot import {section} yet")


def _end_chunk(importer, section_ends: bool) -> None:
    importer.end_chunk()
    if section_ends and isinstance(importer, ChunkReplay):
        importer.drain()  # writes it left running: the next sections may refer to these objects
