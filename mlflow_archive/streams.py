"""Opening archive locations: local paths, ``-`` for stdin/stdout, and object-store URIs."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlsplit

from .errors import ArchiveError


def _is_remote(location: str) -> bool:
    scheme = urlsplit(location).scheme
    return len(scheme) > 1 and scheme != "file"


def _local_path(location: str) -> Path:
    return Path(urlsplit(location).path if location.startswith("file:") else location).expanduser()


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
        raise ArchiveError(f"Cannot write {redact_uri(location)}: {_reason(failure[0])}; check the bucket and credentials.")


def _remote(location: str):
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except Exception as exc:
        raise ArchiveError(f"Cannot open {redact_uri(location)}: {str(exc).splitlines()[0]}.") from None


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
        raise ArchiveError(f"Cannot read {redact_uri(location)}: {_reason(exc)}; check the path.") from None
    with contextlib.closing(stream):
        yield stream


@contextlib.contextmanager
def open_output(location: str) -> Iterator[BinaryIO]:
    """Local files appear only when complete: bytes go to ``NAME.partial``, renamed on success."""
    if location == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if location.startswith("s3://"):
        with _s3_output(location) as stream:
            yield stream
        return
    if _is_remote(location):
        fs, path = _remote(location)
        try:
            stream = fs.open_output_stream(path)
        except Exception as exc:
            raise ArchiveError(f"Cannot write {redact_uri(location)}: {_reason(exc)}; check the path.") from None
        with stream:
            yield stream
        return
    target = _local_path(location)
    partial = target.with_name(target.name + ".partial")
    try:
        stream = open(partial, "wb")
    except OSError as exc:
        raise ArchiveError(f"Cannot write {redact_uri(location)}: {_reason(exc)}; check the path.") from None
    try:
        with stream:
            yield stream
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return text.rstrip(".")


def redact_uri(uri: str | None) -> str | None:
    """Drop user, password, query and fragment (where credentials and tokens live) from a URI."""
    if not uri or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    rest = uri[len(parts.scheme) + 3 + len(parts.netloc) :]
    path = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{path}"
