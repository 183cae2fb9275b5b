"""The outer container: a strict subset of POSIX pax tar, written and read front to back.

Every member is a regular file preceded by its own pax extended header, whose
``comment`` record carries the member's sha256 (and, where they apply, its row
count and decompressed size). ``comment`` is the pax keyword every tar reader
must ignore, so ``tar -tvf`` lists an archive without warnings while our reader
knows each member's hash before reading its bytes. See formats/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import DamagedArchiveError

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default blocking: the end of an archive is padded to it
COPY_CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20  # a member above this spills to a temporary file
MAX_PAX_HEADER = 64 << 10
MAX_NAME_BYTES = 99  # fits the ustar name field, so no pax `path` record is needed
USTAR_SIZE_LIMIT = 8**11  # sizes from here on go into a pax `size` record
COMMENT_MAGIC = "mlflow-archive-member/1"
MAX_INTEGER = 2**63 - 1  # every number of the format fits a signed 64-bit integer
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


@dataclass(frozen=True)
class MemberInfo:
    name: str
    size: int
    sha256: str
    rows: int | None = None
    raw_size: int | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "size": self.size, "sha256": self.sha256}
        if self.rows is not None:
            out["rows"] = self.rows
        if self.raw_size is not None:
            out["raw_size"] = self.raw_size
        return out


class Spool:
    """A write-once buffer that hashes what is written: memory-bounded, spills to disk."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self.file.write(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def rewind(self) -> BinaryIO:
        self.file.seek(0)
        return self.file

    def read_all(self) -> bytes:
        return self.rewind().read()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_member_name(name: str, what: str = "member") -> None:
    """Refuse names that could escape a target directory or collide on extraction."""
    if (
        not NAME_PATTERN.fullmatch(name)
        or len(name.encode()) > MAX_NAME_BYTES
        or any(part in (".", "..") for part in name.split("/"))
    ):
        raise DamagedArchiveError(
            f"The archive holds a {what} with the unsafe name {name[:120]!r}; "
            "it was refused and nothing was extracted from it."
        )


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar_header(name: str, size: int, typeflag: bytes, mtime: int) -> bytes:
    header = bytearray(BLOCK)
    header[0:100] = name.encode().ljust(100, b"\0")
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size if size < USTAR_SIZE_LIMIT else 0, 12)
    header[136:148] = _octal(mtime, 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _pad(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _meta_check(name: str, fields: str) -> str:
    return hashlib.sha256(f"{name}\n{fields}".encode()).hexdigest()[:16]


def format_comment(name: str, index: int, sha256: str, rows: int | None, raw_size: int | None) -> str:
    """The member's pax comment; ``meta`` checksums the fields before it, so none can change unnoticed."""
    parts = [COMMENT_MAGIC, f"index={index}", f"sha256={sha256}"]
    if rows is not None:
        parts.append(f"rows={rows}")
    if raw_size is not None:
        parts.append(f"raw_size={raw_size}")
    fields = " ".join(parts)
    return f"{fields} meta={_meta_check(name, fields)}"


class ContainerWriter:
    """Appends members to a binary stream; memory use is one copy buffer."""

    def __init__(self, stream: BinaryIO, mtime: int) -> None:
        self._stream = stream
        self._mtime = mtime
        self._names: set[str] = set()
        self.bytes_written = 0

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self.bytes_written += len(data)

    def add(self, name: str, spool: Spool, rows: int | None = None, raw_size: int | None = None) -> MemberInfo:
        check_member_name(name)
        if name in self._names:
            raise ValueError(f"member {name} written twice")
        self._names.add(name)
        info = MemberInfo(name, spool.size, spool.sha256, rows, raw_size)
        records = _pax_record("comment", format_comment(name, len(self._names) - 1, info.sha256, rows, raw_size))
        if spool.size >= USTAR_SIZE_LIMIT:
            records += _pax_record("size", str(spool.size))
        self._write(_ustar_header("././@PaxHeader", len(records), b"x", self._mtime))
        self._write(records + _pad(len(records)))
        self._write(_ustar_header(name, spool.size, b"0", self._mtime))
        source = spool.rewind()
        while chunk := source.read(COPY_CHUNK):
            self._write(chunk)
        self._write(_pad(spool.size))
        return info

    def finish(self) -> None:
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self.bytes_written % RECORD))
        self._stream.flush()


def header_problem(block: bytes) -> str | None:
    """Why a ustar header block is refused, or None. The checksum must read exactly as writers format it:
    a lenient parse lets bit flips in the field go unnoticed."""
    checksum = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if block[148:156] != b"%06o\0 " % checksum:
        return "fails its checksum"
    if block[257:263] != b"ustar\0" or block[263:265] != b"00":
        return "is not a POSIX ustar header"
    return None


def parse_octal(field: bytes, what: str, offset: int) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not text or not all(48 <= c <= 55 for c in text):
        raise DamagedArchiveError(f"The archive is damaged: a tar header at byte {offset} has an invalid {what} field.")
    return int(text, 8)


def entry_name(records: dict[str, str], block: bytes) -> str:
    """The pax ``path`` if present, else ustar ``prefix``/``name``, each ending at its first NUL as POSIX
    ustar defines (the bytes after it are ignored, FORMAT.md 2.2)."""
    if "path" in records:
        return records["path"]
    prefix = block[345:500].partition(b"\0")[0].decode("utf-8", "replace").rstrip("/")
    base = block[0:100].partition(b"\0")[0].decode("utf-8", "replace")
    return f"{prefix}/{base}" if prefix else base


def entry_size(records: dict[str, str], block: bytes, start: int, what: str) -> int:
    """The pax ``size`` (1 to 20 digits, at most 2**63 - 1) if present, else the octal ustar size."""
    if "size" not in records:
        return parse_octal(block[124:136], "size", start)
    if not re.fullmatch(r"[0-9]{1,20}", records["size"]) or int(records["size"]) > MAX_INTEGER:
        raise DamagedArchiveError(f"The archive is damaged: the pax header of {what} has an invalid size.")
    return int(records["size"])


def parse_pax(data: bytes, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        digits = data[pos:space]
        if space < 0 or not digits.isdigit() or int(digits) <= len(digits) + 1:
            raise DamagedArchiveError(f"The archive is damaged: the pax header at byte {offset} is malformed.")
        end = pos + int(digits)
        record = data[space + 1 : end]
        if end > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise DamagedArchiveError(f"The archive is damaged: the pax header at byte {offset} is malformed.")
        key, _, value = record[:-1].partition(b"=")
        try:
            records[key.decode()] = value.decode()
        except UnicodeDecodeError:
            raise DamagedArchiveError(f"The archive is damaged: the pax header at byte {offset} is not UTF-8.") from None
        pos = end
    return records


def parse_comment(comment: str | None, name: str) -> tuple[int, str, int | None, int | None]:
    """Return (index, sha256, rows, raw_size) from a member's pax comment; unknown keys are ignored.

    Every field is ``key=value`` with a key that occurs once: two readers cannot then disagree on which
    of two ``rows`` fields counts, or on how empty fields between double spaces split."""
    fields = (comment or "").split(" ")
    if fields[0] != COMMENT_MAGIC:
        raise DamagedArchiveError(
            f"The member {name} carries no mlflow-archive checksum, so this is not an mlflow-archive file "
            "or it is damaged; check that you passed the right file."
        )
    fields_text, _, meta = comment.rpartition(" meta=")
    if meta != _meta_check(name, fields_text):
        raise DamagedArchiveError(f"The archive is damaged: the header of member {name} fails its check.")
    pairs = [f.partition("=") for f in fields_text.split(" ")[1:]]
    values = {key: value for key, _, value in pairs}
    if len(values) != len(pairs) or "meta" in values or not all(key and eq for key, eq, _ in pairs):
        raise DamagedArchiveError(f"The archive is damaged: member {name} has a malformed header.")
    sha = values.get("sha256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise DamagedArchiveError(f"The archive is damaged: member {name} has no valid sha256 in its header.")
    numbers = {key: values.get(key) for key in ("index", "rows", "raw_size")}
    if numbers["index"] is None or any(
        v is not None and (not re.fullmatch(r"[0-9]{1,20}", v) or int(v) > MAX_INTEGER) for v in numbers.values()
    ):
        raise DamagedArchiveError(f"The archive is damaged: member {name} has a malformed header.")
    rows, raw_size = (int(numbers[k]) if numbers[k] is not None else None for k in ("rows", "raw_size"))
    return int(numbers["index"]), sha, rows, raw_size


class ContainerReader:
    """Reads members front to back from a non-seekable stream.

    Each yielded member has been read to its end and matched against its sha256;
    a member that fails is never yielded. The caller owns (and closes) each spool.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0
        self._names: set[str] = set()

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._stream.read(size)
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                raise DamagedArchiveError(
                    f"The archive is truncated: it ends at byte {self.offset + len(data)}, inside {what}; "
                    "copy or download it again."
                )
            data += more
        self.offset += size
        return data

    def _header(self, what: str) -> tuple[bytes, int] | None:
        start = self.offset
        block = self._read_exact(BLOCK, what)
        if block == b"\0" * BLOCK:
            return None
        problem = header_problem(block)
        if problem == "fails its checksum":
            if start == 0:
                raise DamagedArchiveError(
                    "This is not an mlflow-archive file (no tar header at its start); check that you passed the right file."
                )
            raise DamagedArchiveError(f"The archive is damaged: the tar header at byte {start} fails its checksum.")
        if problem:
            raise DamagedArchiveError(f"The archive is not a POSIX pax tar (header at byte {start}).")
        return block, start

    def _check_end(self) -> None:
        if self._header("the end-of-archive marker") is not None:
            raise DamagedArchiveError(f"The archive is damaged: its end-of-archive marker at byte {self.offset - BLOCK} is broken.")
        while chunk := self._stream.read(COPY_CHUNK):
            if chunk.count(0) != len(chunk):
                raise DamagedArchiveError(
                    f"The archive has data after its end-of-archive marker (near byte {self.offset}); it is damaged."
                )
            self.offset += len(chunk)
        if self.offset % RECORD:
            raise DamagedArchiveError(
                f"The archive is truncated or extended: its {self.offset} bytes are not a whole number of "
                f"{RECORD}-byte tar records; copy or download it again."
            )

    def __iter__(self) -> Iterator[tuple[MemberInfo, Spool]]:
        while True:
            found = self._header("a member header")
            if found is None:
                self._check_end()
                return
            block, start = found
            if block[156:157] != b"x":
                raise DamagedArchiveError(self._foreign_entry_message(block, start))
            pax_size = parse_octal(block[124:136], "size", start)
            if pax_size > MAX_PAX_HEADER:
                raise DamagedArchiveError(f"The archive is damaged: the pax header at byte {start} is too large.")
            records = parse_pax(self._read_exact(pax_size, "a pax header"), start)
            self._skip_padding(pax_size, "a pax header")
            found = self._header("a member header")
            if found is None:
                raise DamagedArchiveError(f"The archive is damaged: the pax header at byte {start} is followed by no member.")
            block, start = found
            if block[156:157] not in (b"0", b"\0"):
                raise DamagedArchiveError(self._foreign_entry_message(block, start))
            name = entry_name(records, block)
            check_member_name(name)
            if name in self._names:
                raise DamagedArchiveError(f"The archive holds member {name} twice; it is damaged or was tampered with.")
            self._names.add(name)
            size = entry_size(records, block, start, f"member {name}")
            index, sha, rows, raw_size = parse_comment(records.get("comment"), name)
            if index != len(self._names) - 1:
                raise DamagedArchiveError(
                    f"The archive is damaged: member {name} is out of place (position {len(self._names) - 1}, "
                    f"written as {index}); members were reordered or lost."
                )
            spool = Spool()
            try:
                remaining = size
                while remaining:
                    chunk = self._read_exact(min(remaining, COPY_CHUNK), f"member {name}")
                    spool.write(chunk)
                    remaining -= len(chunk)
                self._skip_padding(size, f"member {name}")
                if spool.sha256 != sha:
                    raise DamagedArchiveError(
                        f"The archive is damaged: member {name} does not match its sha256; "
                        "nothing from it was used, copy or download the archive again."
                    )
            except BaseException:
                spool.close()
                raise
            yield MemberInfo(name, size, sha, rows, raw_size), spool

    def _skip_padding(self, size: int, what: str) -> None:
        padding = self._read_exact(-size % BLOCK, what)
        if padding.count(0) != len(padding):
            raise DamagedArchiveError(f"The archive is damaged: the padding after {what} (before byte {self.offset}) is not zero.")

    @staticmethod
    def _foreign_entry_message(block: bytes, start: int) -> str:
        name = block[0:100].rstrip(b"\0").decode("utf-8", "replace")
        kinds = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a device", b"4": "a device", b"5": "a directory", b"6": "a FIFO"}
        kind = kinds.get(block[156:157])
        if kind:
            return f"The archive holds {kind} ({name[:80]!r}); mlflow-archive files hold only regular files, so it was refused."
        return (
            f"The tar entry {name[:80]!r} at byte {start} has no mlflow-archive header; "
            "this is a plain tar file, not an mlflow-archive."
        )
