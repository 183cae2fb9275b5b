"""Webhooks of the model and prompt registry: name, URL, events, status, times, and the signing secret where it can travel.

Webhooks belong to the whole server, so only an export without selectors takes them (``--no-webhooks`` leaves
them out). MLflow's API never returns a webhook's secret: an export over REST carries none (``has_secret`` null),
an export from the database carries each secret as the database stores it, encrypted under the source server's
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` (never decrypted on the way).

Import creates the webhooks last, after every other kind of the archive, so that nothing the import itself
creates fires them. Each gets its secret from ``--secrets-file`` (``{"webhooks": {"<name>": "<secret>"}}``), else
from the archive's encrypted value when this process has the key it was encrypted under (it is decrypted in memory
and sent to the destination's API only); a webhook whose secret is neither is created without one and named in
the summary, which fails unless ``--allow-missing-secrets``. A webhook of the same name, URL and events on the
destination is already present; one of the same name with another URL or other events is the destination's own
and is left as it is (a note says so).
"""

from __future__ import annotations

import os

from ..archive import Member
from ..context import ExportContext, ImportContext
from ._common import batches, create_unless_present, table_columns

SECTION = "webhooks"
PER_CHUNK = 1000
ENCRYPTION_KEY = "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"


# -- Export -------------------------------------------------------------------------------

def export(ctx: ExportContext) -> None:
    if ctx.options.no_webhooks or not ctx.selection.everything:
        return  # server-wide objects: a selection did not ask for them
    reason = ctx.source.webhooks_unsupported()
    if reason:
        ctx.summary.note(f"the source store has no webhooks ({reason}); none exported")
        return
    for rows in batches(ctx.source.webhook_rows(), PER_CHUNK):
        ctx.writer.chunk(SECTION).write_table(SECTION, table_columns(SECTION, rows))
        ctx.summary.add(SECTION, "exported", len(rows))


# -- Import -------------------------------------------------------------------------------

def _events(webhook_or_row) -> list[tuple[str, str]]:
    if isinstance(webhook_or_row, dict):
        return sorted((e["entity"], e["action"]) for e in webhook_or_row["events"])
    return sorted((e.entity.value, e.action.value) for e in webhook_or_row.events)


class Importer:
    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.rows: list[dict] = []
        self.present: dict[str, list] | None = None  # the destination's webhooks by name, read once
        self.without_secret: list[str] = []

    def member(self, member: Member) -> None:
        self.rows += member.read_table().to_pylist()

    def end_chunk(self) -> None:
        ctx, rows = self.ctx, self.rows
        self.rows = []
        if self.present is None:
            reason = ctx.dest.webhooks_unsupported()
            if reason:
                ctx.summary.skip_kind(SECTION, f"the destination has no webhooks ({reason}); {len(rows)} not imported")
                self.present = {}
                return
            self.present = {}
            for webhook in ctx.dest.webhooks():
                self.present.setdefault(webhook.name, []).append(webhook)
        for row in rows:
            create_unless_present(
                ctx, SECTION, f"webhook {row['name']!r}", self.present.get(row["name"], []),
                lambda w, row=row: w.url == row["url"] and _events(w) == _events(row),
                lambda row=row: ctx.dest.create_webhook(row, self._secret(row), row["status"]),
            )

    def _secret(self, row: dict) -> str | None:
        given = self.ctx.options.secrets.get(SECTION, {})
        if row["name"] in given:
            return given[row["name"]]
        if row["encrypted_secret"] is not None:
            secret = decrypted(row["encrypted_secret"])
            if secret is not None:
                return secret
        if row["has_secret"] is not False:  # had one (database export), or the source did not say (REST)
            self.without_secret.append(row["name"])
        return None

    def finish(self) -> None:
        if not self.without_secret:
            return
        names = ", ".join(repr(n) for n in self.without_secret[:10]) + (" ..." if len(self.without_secret) > 10 else "")
        what = (
            f"{len(self.without_secret)} webhook(s) were created without a signing secret ({names}): the archive carries "
            f"none this import could use (give them in --secrets-file, or set {ENCRYPTION_KEY} to the source server's key "
            "for an archive exported from its database)"
        )
        if self.ctx.options.allow_missing_secrets:
            self.ctx.summary.note(what)
        else:
            self.ctx.summary.fail("webhook_secrets", what + "; --allow-missing-secrets accepts this", len(self.without_secret))


def decrypted(token: str) -> str | None:
    """The secret in MLflow's encrypted form, when this process has the key it was encrypted under."""
    key = os.environ.get(ENCRYPTION_KEY)
    if not key:
        return None
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return Fernet(key).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
