"""Webhooks travel both ways, field by field, and their secrets are checked by use: a delivery from the destination
carries a signature made with the source's secret. Imports never fire them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent, WebhookStatus
from mlflow.webhooks.constants import WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER

import archive_cli
from servers import server_env, start_server

SECRET = "s3cret-ü-🔑"
NAME_A, NAME_B = "deploy.hook_1", "audit-hook"


class Listener:
    """An HTTP endpoint on 127.0.0.1 that records every delivery (headers and body)."""

    def __init__(self) -> None:
        deliveries = self.deliveries = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                deliveries.append((dict(self.headers), body.decode()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} deliveries, expected {count}"


def signed_with(secret: str, headers: dict, body: str) -> bool:
    content = f"{headers[WEBHOOK_DELIVERY_ID_HEADER]}.{headers[WEBHOOK_TIMESTAMP_HEADER]}.{body}"
    digest = base64.b64encode(hmac.new(secret.encode(), content.encode(), hashlib.sha256).digest()).decode()
    return headers.get(WEBHOOK_SIGNATURE_HEADER) == f"v1,{digest}"


@pytest.fixture(scope="module")
def listener():
    listener = Listener()
    yield listener
    listener.server.shutdown()


@pytest.fixture
def webhook_source(fresh_dest_server, listener):
    """A server with two webhooks (one signed, active; one unsigned, disabled) and a registered model created after
    them, which an import brings to a destination."""
    client = MlflowClient(tracking_uri=fresh_dest_server.url)
    client.create_webhook(
        NAME_A, listener.url, [WebhookEvent("registered_model", "created"), WebhookEvent("model_version", "created")],
        description="Ünïcödé 実験 " + "d" * 900, secret=SECRET,
    )
    client.create_webhook(NAME_B, listener.url, [WebhookEvent("prompt", "created")], status=WebhookStatus.DISABLED)
    client.create_registered_model("fires-on-the-source")
    listener.wait_for(1)  # the source's own delivery
    return fresh_dest_server


def _webhooks(url: str) -> dict[str, dict]:
    return {
        w.name: {
            "description": w.description, "url": w.url, "status": w.status.value,
            "events": sorted((e.entity.value, e.action.value) for e in w.events),
        }
        for w in MlflowClient(tracking_uri=url).list_webhooks(max_results=100)
    }


def _delivery_after_model(url: str, listener: Listener, name: str) -> tuple[dict, str]:
    time.sleep(1.5)  # past the server's webhook cache (MLFLOW_WEBHOOK_CACHE_TTL=1 in servers.server_env)
    before = len(listener.deliveries)
    MlflowClient(tracking_uri=url).create_registered_model(name)
    listener.wait_for(before + 1)
    return listener.deliveries[before]


def test_rest_round_trip_with_a_secrets_file(webhook_source, module_dest_server, listener, tmp_path):
    archive = tmp_path / "webhooks.mlar"
    exported = archive_cli.export(archive, webhook_source.url)
    assert archive_cli.export_counts(exported.stderr_text)["webhooks"] == 2
    delivered = len(listener.deliveries)

    # Over REST the archive has no secret: without one given, the import names the webhooks and fails.
    missing = archive_cli.import_(archive, module_dest_server.url, check=False)
    assert missing.returncode == 1 and "2 webhook(s) were created without a signing secret" in missing.stderr_text
    assert _webhooks(module_dest_server.url) == _webhooks(webhook_source.url)
    assert len(listener.deliveries) == delivered  # the import's registered model was created before the webhooks

    # Into another destination, with the secrets given: the delivery is signed with the source's secret.
    second = start_server(tmp_path / "second")
    try:
        secrets = tmp_path / "secrets.json"
        secrets.write_text(json.dumps({"webhooks": {NAME_A: SECRET, NAME_B: "b-secret"}}))
        given = archive_cli.import_(archive, second.url, "--secrets-file", str(secrets))
        assert archive_cli.import_counts(given.stderr_text)["webhooks"] == (2, 0, 0)
        assert SECRET not in given.stderr_text + given.stdout_text
        headers, body = _delivery_after_model(second.url, listener, "fires-on-the-destination")
        assert signed_with(SECRET, headers, body)
        again = archive_cli.import_(archive, second.url, "--secrets-file", str(secrets))
        assert archive_cli.import_counts(again.stderr_text)["webhooks"] == (0, 2, 0)
        assert len(_webhooks(second.url)) == 2
    finally:
        second.stop()


def test_database_export_carries_the_encrypted_secret_to_restore_and_import(webhook_source, listener, tmp_path, monkeypatch):
    archive = tmp_path / "database.mlar"
    archive_cli.export(archive, f"sqlite:///{webhook_source.backend_path}", "--artifacts-destination", str(webhook_source.artifacts_path))
    assert SECRET.encode() not in archive.read_bytes()

    # Restore: the stored value is written as it is; a server with the source's key signs with the secret.
    root = tmp_path / "restored"
    restored = archive_cli.run(
        "restore", "-i", str(archive), "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    )
    assert "webhooks: 2 created" in restored.stderr_text
    server = start_server(root)
    try:
        assert _webhooks(server.url) == _webhooks(webhook_source.url)
        source = {w.name: w for w in MlflowClient(tracking_uri=webhook_source.url).list_webhooks(max_results=100)}
        for w in MlflowClient(tracking_uri=server.url).list_webhooks(max_results=100):
            assert (w.webhook_id, w.creation_timestamp, w.last_updated_timestamp) == (
                source[w.name].webhook_id, source[w.name].creation_timestamp, source[w.name].last_updated_timestamp)
        headers, body = _delivery_after_model(server.url, listener, "fires-on-the-restored-server")
        assert signed_with(SECRET, headers, body)
    finally:
        server.stop()

    # Import over REST: with the source's key in this process, the secret is decrypted in memory and given to the API.
    monkeypatch.setenv("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", server_env()["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"])
    destination = start_server(tmp_path / "imported")
    try:
        imported = archive_cli.import_(archive, destination.url)  # exit 0: the unsigned webhook is known to have none
        assert archive_cli.import_counts(imported.stderr_text)["webhooks"] == (2, 0, 0)
        headers, body = _delivery_after_model(destination.url, listener, "fires-on-the-import")
        assert signed_with(SECRET, headers, body)
    finally:
        destination.stop()


def test_a_selection_leaves_webhooks_out_and_no_webhooks_too(webhook_source, tmp_path):
    selected = archive_cli.export(tmp_path / "sel.mlar", webhook_source.url, "--experiments", "0")
    unselected = archive_cli.export(tmp_path / "none.mlar", webhook_source.url, "--no-webhooks")
    for result in (selected, unselected):
        assert "webhooks" not in archive_cli.export_counts(result.stderr_text)
        assert "webhooks" not in result.stderr_text
