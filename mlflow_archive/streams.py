"""Opening archive locations: local paths, ``-`` for stdin/stdout, and object-store URIs."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import unquote, urlsplit

from .errors import ArchiveError, OutputClosedError, one_line, redact


def _is_remote(location: str) -> bool:
    scheme = urlsplit(location).scheme
    return len(scheme) > 1 and scheme != "file"


def _local_path(location: str) -> Path:
    return Path(unquote(urlsplit(location).path) if location.startswith("file:") else location).expanduser()


class _PipeReader:
    """The read end of the upload pipe; raising from ``read`` makes boto3 abort the upload."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "rb")
        self.aborted = False

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if self.aborted:
            raise OSError("export failed; upload aborted")
        return data

    def close(self) -> None:
        self._file.close()


def _boto3():
    try:
        import boto3
    except ImportError:
        raise ArchiveError("s3:// locations need boto3: pip install 'mlflow-archive[s3]'.") from None
    return boto3


def _s3_parts(location: str) -> tuple[str, str]:
    parts = urlsplit(location)
    return parts.netloc, parts.path.lstrip("/")


@contextlib.contextmanager
def _s3_output(location: str) -> Iterator[BinaryIO]:
    """Stream to S3 as a multipart upload that completes only if the writer finishes."""
    import threading

    bucket, key = _s3_parts(location)
    client = _boto3().client("s3")
    read_fd, write_fd = os.pipe()
    reader = _PipeReader(read_fd)
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            client.upload_fileobj(reader, bucket, key)
        except BaseException as exc:
            failure.append(exc)
        finally:
            reader.close()

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    writer = os.fdopen(write_fd, "wb")
    try:
        yield writer
        writer.close()
    except BaseException:
        reader.aborted = True
        with contextlib.suppress(OSError):
            writer.close()
        thread.join()
        raise
    thread.join()
    if failure:
        raise ArchiveError(f"Cannot write {redact_uri(location)}: {one_line(failure[0])}; check the bucket and credentials.")


def _remote(location: str):
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except Exception as exc:
        raise ArchiveError(f"Cannot open {redact_uri(location)}: {one_line(exc)}.") from None


def _open_reader(location: str):
    if location.startswith("s3://"):
        bucket, key = _s3_parts(location)
        return _boto3().client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    if _is_remote(location):
        fs, path = _remote(location)
        return fs.open_input_stream(path)
    return open(_local_path(location), "rb")


@contextlib.contextmanager
def open_input(location: str) -> Iterator[BinaryIO]:
    if location == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = _open_reader(location)
    except ArchiveError:
        raise
    except Exception as exc:  # OSError, and the object stores' own errors
        raise ArchiveError(f"Cannot read {redact_uri(location)}: {one_line(exc)}; check the path.") from None
    with contextlib.closing(stream):
        yield stream


class _GuardedOutput:
    """An output whose write errors become one sentence: a full disk, or a reader that went away."""

    def __init__(self, stream: BinaryIO, location: str) -> None:
        self._stream = stream
        self._location = location

    def _failed(self, exc: OSError) -> ArchiveError:
        if isinstance(exc, BrokenPipeError):
            return OutputClosedError("The program reading the archive closed its end of the pipe; the archive is incomplete.")
        where = "stdout" if self._location == "-" else redact_uri(self._location)
        return ArchiveError(f"Cannot write {where}: {one_line(exc)}; the archive is incomplete, free space or choose another output.")

    def write(self, data) -> int:
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        try:
            self._stream.close()
        except OSError as exc:
            raise self._failed(exc) from None


def _new_partial_file(target: Path) -> tuple[Path, BinaryIO]:
    """A file of a name no one has used, ``NAME.<random>.partial`` next to ``target``, created by this call.

    O_EXCL: an existing file or symlink of that name (planted, or left by a killed export) is never followed,
    truncated or reused; the open fails instead.
    """
    path = target.with_name(f"{target.name}.{secrets.token_hex(8)}.partial")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return path, os.fdopen(fd, "wb")


@contextlib.contextmanager
def open_output(location: str) -> Iterator[BinaryIO]:
    """Regular local files appear only when complete: bytes go to a new ``NAME.<random>.partial``, renamed on success.

    An existing output that is not a regular file (a FIFO, a device, ``/dev/stdout``) is written
    in place: renaming over it would replace it with a file. A symlink's target is what is written.
    """
    if location == "-":
        guarded = _GuardedOutput(sys.stdout.buffer, location)
        yield guarded
        guarded.flush()
        return
    if location.startswith("s3://"):
        with _s3_output(location) as stream:
            yield _GuardedOutput(stream, location)
        return
    if _is_remote(location):
        fs, path = _remote(location)
        try:
            stream = fs.open_output_stream(path)
        except Exception as exc:
            raise ArchiveError(f"Cannot write {redact_uri(location)}: {one_line(exc)}; check the path.") from None
        with contextlib.closing(_GuardedOutput(stream, location)) as guarded:
            yield guarded
        return
    target = Path(os.path.realpath(_local_path(location)))
    if target.is_dir():
        raise ArchiveError(f"Cannot write {location}: it is a folder; give a file name, e.g. {Path(location) / 'backup.mlar'}.")
    in_place = target.exists() and not target.is_file()
    try:
        written, stream = (target, open(target, "wb")) if in_place else _new_partial_file(target)
    except OSError as exc:
        raise ArchiveError(f"Cannot write {location}: {one_line(exc)}; check the path.") from None
    guarded = _GuardedOutput(stream, location)
    try:
        with contextlib.closing(guarded):
            yield guarded
        if not in_place:
            os.replace(written, target)
    except BaseException:
        if not in_place:
            written.unlink(missing_ok=True)
        raise


def redact_uri(uri: str | None) -> str | None:
    """A URI as recorded in an archive or named in a message: credentials removed (``redact``), and its query and
    fragment (where tokens live) dropped."""
    if not uri or "://" not in uri:
        return uri
    return redact(re.split(r"[?#]", uri, maxsplit=1)[0])
