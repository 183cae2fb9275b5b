"""The errors users see. Each message is one sentence: what is wrong, and what to do.

Every message, summary line and log line goes through ``redact``, whoever wrote it (we, MLflow,
SQLAlchemy or a driver), so a password given in a URI never reaches a terminal or a log; the CLI
shows archive-derived text through ``printable``, so an archive cannot send terminal control codes.
"""

import re

# `user:password@` after a URI's scheme: everything up to the last `@` of the authority.
_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")
# The value of a parameter that carries a secret: `password=`, `token=`, `X-Amz-Signature=`, `sig=`, ...,
# in a URI's query or a driver's `key=value` connection string.
_SECRET_PARAMETER = re.compile(
    r"\b([\w-]*?(?:password|passwd|pwd|secret|token|signature|credential|sig|api_?key|access_?key))=[^&;,\s'\"#)]+",
    re.IGNORECASE,
)
# Control characters (C0, DEL, C1), Unicode line and paragraph separators, and bidirectional embeddings,
# overrides and isolates.
_STEERING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def redact(text: str) -> str:
    """``text`` with the user information of every URI in it removed and secret parameters' values masked."""
    return _SECRET_PARAMETER.sub(r"\1=***", _USERINFO.sub("", text))


def printable(text: str) -> str:
    """``text`` with what would steer a terminal escaped as ``\\x1b``, ``\\n``, ``\\u202e``: control characters (ESC,
    newlines, C1), line separators and bidirectional overrides."""
    return _STEERING.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class ArchiveError(Exception):
    """Base class: the CLI prints the message alone, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class DamagedArchiveError(ArchiveError):
    """The archive is truncated, corrupted, or not an mlflow-archive at all."""


class UnwritableArchiveError(DamagedArchiveError):
    """The archive's bytes are sound, but it holds what no destination can take (an object twice, a file name no
    file system can create): a good copy of it is refused the same way."""


class UnsupportedArchiveError(ArchiveError):
    """The archive is sound but needs a newer reader."""


class InsufficientMemoryError(ArchiveError):
    """The archive is sound but this machine has too little memory to decode it."""


class OutputClosedError(ArchiveError):
    """The program reading the archive went away (a closed pipe): not the source's fault."""


class SourceError(ArchiveError):
    """The tracking server could not be read or written."""


def one_line(exc: BaseException, with_type: bool = False, limit: int = 300) -> str:
    """An error as one line for a message: its first line of text (or OS reason), without a final period.

    Redacted before it is cut, so a cut cannot leave half a password that no longer looks like one.
    """
    lines = redact(str(getattr(exc, "strerror", None) or exc)).strip().splitlines()
    text = (lines[0] if lines else type(exc).__name__).rstrip(".")
    return (f"{type(exc).__name__}: {text}" if with_type else text)[:limit]
