"""`inspect` and `verify`: read an archive without touching any server."""

from __future__ import annotations

from dataclasses import dataclass, field

from .archive import ArchiveReader
from .members import ARTIFACTS_EXT
from .streams import open_input


@dataclass
class VerifyReport:
    members: int = 0
    rows: int = 0
    artifact_files: int = 0
    bytes_read: int = 0
    ignored: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    header: dict = field(default_factory=dict)

    def summary(self) -> str:
        extra = f", {len(self.ignored)} unknown member(s) ignored" if self.ignored else ""
        version = self.header.get("writer_version")
        return (
            f"OK: format version {version}, {self.members} members, {self.rows} table rows, "
            f"{self.artifact_files} artifact files, {self.bytes_read} bytes checked{extra}."
        )


def inspect_archive(location: str) -> dict:
    """Header, member list (name, size, rows, sha256) and object counts of an archive.

    >>> info = inspect_archive("backup.mlar")  # doctest: +SKIP
    >>> info["counts"]["runs"]  # doctest: +SKIP
    """
    with open_input(location) as stream:
        reader = ArchiveReader(stream)
        for _member in reader:
            pass
    return {
        "format_version": reader.header.get("writer_version"),
        "header": reader.header,
        "members": [m.to_json() for m in reader.seen],
        "counts": reader.counts,
        "ignored_members": reader.ignored,
    }


def verify_archive(location: str) -> VerifyReport:
    """Check every hash, decode every table and artifact tarball, and match the trailer.

    Raises ``ArchiveError`` naming the first problem.
    """
    report = VerifyReport()
    with open_input(location) as stream:
        reader = ArchiveReader(stream)
        report.header = reader.header
        for member in reader:
            if member.kind == ARTIFACTS_EXT:
                for _path, data in member.iter_artifacts():
                    while data.read(1 << 20):
                        pass
                    report.artifact_files += 1
            else:
                report.rows += member.read_table().num_rows
    report.members = len(reader.seen) + 1
    report.bytes_read = sum(m.size for m in reader.seen)
    report.ignored = reader.ignored
    report.counts = reader.counts
    return report
