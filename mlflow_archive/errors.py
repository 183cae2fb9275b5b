"""The errors users see. Each message is one sentence: what is wrong, and what to do."""


class ArchiveError(Exception):
    """Base class: the CLI prints the message alone, never a traceback."""


class DamagedArchiveError(ArchiveError):
    """The archive is truncated, corrupted, or not an mlflow-archive at all."""


class UnsupportedArchiveError(ArchiveError):
    """The archive is sound but needs a newer reader."""


class SourceError(ArchiveError):
    """The tracking server could not be read or written."""
