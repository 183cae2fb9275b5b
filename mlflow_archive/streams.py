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


def _remote(location: str):
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except Exception as exc:
        raise ArchiveError(f"Cannot open {redact_uri(location)}: {str(exc).splitlines()[0]}.") from None


@contextlib.contextmanager
def open_input(location: str) -> Iterator[BinaryIO]:
    if location == "-":
        yield sys.stdin.buffer
        return
    try:
        if _is_remote(location):
            fs, path = _remote(location)
            with fs.open_input_stream(path) as stream:
                yield stream
            return
        with open(_local_path(location), "rb") as stream:
            yield stream
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot read {redact_uri(location)}: {_reason(exc)}; check the path.") from None


@contextlib.contextmanager
def open_output(location: str) -> Iterator[BinaryIO]:
    """Local files appear only when complete: bytes go to ``NAME.partial``, renamed on success."""
    if location == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        if _is_remote(location):
            fs, path = _remote(location)
            with fs.open_output_stream(path) as stream:
                yield stream
            return
        target = _local_path(location)
        partial = target.with_name(target.name + ".partial")
        stream = open(partial, "wb")
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot write {redact_uri(location)}: {_reason(exc)}; check the path.") from None
    try:
        with stream:
            yield stream
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def redact_uri(uri: str | None) -> str | None:
    """Drop user, password, query and fragment (where credentials and tokens live) from a URI."""
    if not uri or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    rest = uri[len(parts.scheme) + 3 + len(parts.netloc) :]
    path = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{path}"
