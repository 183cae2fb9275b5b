"""Per-object-type outcome counts, and progress on stderr."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

from .coverage import Uncarried
from .errors import one_line, redact


@dataclass
class Counts:
    exported: int = 0
    created: int = 0
    skipped: int = 0
    failed: int = 0
    first_error: str | None = None


@dataclass
class Summary:
    """What an export or import did, by object type. ``ok`` is false if anything failed."""

    action: str  # "export" or "import"
    counts: dict[str, Counts] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # the destination's own objects the archive would have changed
    skipped_kinds: dict[str, str] = field(default_factory=dict)  # object kind -> why the server cannot hold it
    strict: bool = False  # a skipped kind, or an object left alone, makes the summary not ok
    uncarried: list[Uncarried] = field(default_factory=list)  # what the source holds that no archive kind carries
    allow_uncarried: bool = False  # --allow-missing-kinds: those do not make the summary not ok
    archive_bytes: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _counts(self, object_type: str) -> Counts:
        return self.counts.setdefault(object_type, Counts())

    def add(self, object_type: str, outcome: str, n: int = 1) -> None:
        with self._lock:
            counts = self._counts(object_type)
            setattr(counts, outcome, getattr(counts, outcome) + n)

    def fail(self, object_type: str, error: BaseException | str, n: int = 1) -> None:
        message = error if isinstance(error, str) else one_line(error, with_type=True)
        with self._lock:
            counts = self._counts(object_type)
            counts.failed += n
            if counts.first_error is None:
                counts.first_error = message

    def note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def leave_alone(self, text: str) -> None:
        """An object of the destination's own that the archive would delete, move or overwrite: kept as it is."""
        with self._lock:
            if text not in self.left_alone:
                self.left_alone.append(text)

    def leave_out(self, uncarried: Uncarried) -> None:
        with self._lock:
            self.uncarried.append(uncarried)

    def skip_kind(self, object_type: str, reason: str) -> None:
        with self._lock:
            self.skipped_kinds[object_type] = reason

    @property
    def ok(self) -> bool:
        return (
            not any(c.failed for c in self.counts.values())
            and not (self.strict and (self.skipped_kinds or self.left_alone))
            and (self.allow_uncarried or not self.uncarried)
        )

    def lines(self) -> list[str]:
        """The summary as printed, one line per object type, skipped kind and note, credentials masked."""
        out = []
        for object_type, c in sorted(self.counts.items()):  # a fixed order, whatever order the threads finished in
            if self.action == "export":
                line = f"{object_type}: {c.exported} exported"
                if c.failed:
                    line += f", {c.failed} failed"
            else:
                line = f"{object_type}: {c.created} created, {c.skipped} already present, {c.failed} failed"
            if c.first_error:
                line += f" (first error: {c.first_error})"
            out.append(line)
        strict = f" (--strict: this fails the {self.action})" if self.strict and self.action != "export" else ""
        out += [f"{kind}: skipped, {reason}{strict}" for kind, reason in self.skipped_kinds.items()]
        allowed = " (--allow-missing-kinds: the export still succeeds)" if self.allow_uncarried else ""
        out += [u.sentence() + allowed for u in self.uncarried]
        if self.uncarried and not self.allow_uncarried:
            out.append("note: the archive is complete but lacks the kinds above; --allow-missing-kinds accepts that")
        out += [f"note: {n}" for n in self.notes]
        out += [f"note: {n}{strict}" for n in self.left_alone]
        return [redact(line) for line in out]



class Progress:
    """A single self-rewriting status line on stderr, shown only on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, text: str, done: int, total: int | None = None, nbytes: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < 0.2:
                return
            self._last = now
        elapsed = max(now - self._start, 1e-6)
        of = f"/{total}" if total else ""
        size = f", {nbytes / 1e6:.1f} MB ({nbytes / 1e6 / elapsed:.1f} MB/s)" if nbytes else ""
        sys.stderr.write(f"\r{text}: {done}{of} ({done / elapsed:.1f}/s){size}\033[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
