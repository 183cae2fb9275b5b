"""Exact restore into a database: one module per object type, in archive order.

Each module names its ``SECTION`` and provides a ``Restorer(ctx)`` with ``check(member)``
(raise on a conflicting ID, before anything is written), ``member(member)`` and ``end_chunk()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..database import DatabaseDestination
from ..summary import Progress, Summary


@dataclass
class RestoreContext:
    db: DatabaseDestination
    artifacts: Path  # the server's --artifacts-destination: `mlflow-artifacts:/<path>` lives at `<artifacts>/<path>`
    summary: Summary
    progress: Progress
    # The deletion time deleted runs get (the archive carries none; `mlflow gc` picks runs by it): the export's start.
    deleted_time: int | None = None


def conflict(what: str, fields: dict, present: dict) -> str:
    """One sentence naming the object whose ID the destination already uses for something else."""
    differs = ", ".join(f"{k} {fields[k]!r} here, {present[k]!r} there" for k in fields if fields[k] != present[k])
    return (
        f"The destination already holds {what} with other content ({differs}); restore writes only into an empty "
        "database or one whose IDs do not collide with the archive's (use `mlflow archive import` to merge)."
    )
