"""The errors users see. Each message is one sentence: what is wrong, and what to do."""


class ArchiveError(Exception):
    """Base class: the CLI prints the message alone, never a traceback."""


class DamagedArchiveError(ArchiveError):
    """The archive is truncated, corrupted, or not an mlflow-archive at all."""


class UnwritableArchiveError(DamagedArchiveError):
    """The archive's bytes are sound, but it holds what no destination can take (an object twice, a file name no
    file system can create): a good copy of it is refused the same way."""


class UnsupportedArchiveError(ArchiveError):
    """The archive is sound but needs a newer reader."""


class OutputClosedError(ArchiveError):
    """The program reading the archive went away (a closed pipe): not the source's fault."""


class SourceError(ArchiveError):
    """The tracking server could not be read or written."""


def one_line(exc: BaseException, with_type: bool = False, limit: int = 300) -> str:
    """An error as one line for a message: its first line of text (or OS reason), without a final period."""
    lines = str(getattr(exc, "strerror", None) or exc).strip().splitlines()
    text = (lines[0] if lines else type(exc).__name__).rstrip(".")
    return (f"{type(exc).__name__}: {text}" if with_type else text)[:limit]
