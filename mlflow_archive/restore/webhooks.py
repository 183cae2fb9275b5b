"""Webhooks with their IDs, times, status, events and signing secret as the source database stored it.

The secret is written as the archive carries it: encrypted under the source server's
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``, so the destination's server signs deliveries only when it runs with the
same key. When this process has a key, each secret is checked against it and the summary says which it cannot
decrypt. An archive exported over REST has no secrets: those webhooks are restored without one, and named.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from mlflow.store.model_registry.dbmodels.models import SqlWebhook, SqlWebhookEvent

from ..archive import Member
from ..objects.webhooks import ENCRYPTION_KEY, decrypted
from . import RestoreContext, missing_rows

SECTION = "webhooks"
WEBHOOK_COLUMNS = ("webhook_id", "name", "description", "url", "status", "secret", "creation_timestamp", "last_updated_timestamp")
# MLflow's table with the secret as a plain string: its EncryptedString type would encrypt the stored token again.
WEBHOOKS = sa.Table("webhooks", sa.MetaData(), *(
    sa.Column(c.name, sa.String() if c.name == "secret" else c.type, nullable=c.nullable)
    for c in SqlWebhook.__table__.c if c.name in WEBHOOK_COLUMNS
))
EVENTS = SqlWebhookEvent.__table__
COMPARED = ("name", "url", "creation_timestamp")


def webhook_row(row: dict) -> dict:
    return {**{c: row[c] for c in WEBHOOK_COLUMNS if c != "secret"}, "secret": row["encrypted_secret"]}


class Restorer:
    def __init__(self, ctx: RestoreContext) -> None:
        self.ctx = ctx
        self.without_secret: list[str] = []
        self.undecryptable: list[str] = []

    def _plan(self, member: Member) -> tuple[list[dict], list[dict]]:
        rows = member.read_table().to_pylist()
        return rows, missing_rows(self.ctx, WEBHOOKS, "webhook_id", rows, webhook_row, COMPARED, "webhook {}")

    def check(self, member: Member) -> None:
        self._plan(member)

    def member(self, member: Member) -> None:
        rows, new = self._plan(member)
        with self.ctx.db.begin() as conn:
            self.ctx.db.insert(conn, WEBHOOKS, [webhook_row(r) for r in new])
            self.ctx.db.insert(conn, EVENTS, [{"webhook_id": r["webhook_id"], **e} for r in new for e in r["events"]])
        self.ctx.summary.add(SECTION, "created", len(new))
        self.ctx.summary.add(SECTION, "skipped", len(rows) - len(new))
        for row in new:
            if row["encrypted_secret"] is None and row["has_secret"] is not False:
                self.without_secret.append(row["name"])
            elif row["encrypted_secret"] is not None and decrypted(row["encrypted_secret"]) is None:
                self.undecryptable.append(row["name"])

    def end_chunk(self) -> None:
        if self.without_secret:
            self.ctx.summary.note(
                f"{len(self.without_secret)} webhook(s) were restored without a signing secret (the archive was exported "
                "over REST, which never returns secrets): set them with MLflow's update_webhook"
            )
        if self.undecryptable:
            how = "does not decrypt them" if os.environ.get(ENCRYPTION_KEY) else "is not set here to check them"
            self.ctx.summary.note(
                f"the signing secrets of {len(self.undecryptable)} webhook(s) were kept as the source database encrypted "
                f"them: the destination's server signs their deliveries only with the source's {ENCRYPTION_KEY} "
                f"(this process's {ENCRYPTION_KEY} {how})"
            )
        self.without_secret, self.undecryptable = [], []
