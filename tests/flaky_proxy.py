"""A proxy in front of a tracking server that fails some requests as a server under load does, or delays them
as a distant one does.

``FlakyProxy(target_url, fail, latency)`` listens on 127.0.0.1 and records every request; ``fail(n, method, path)``
says what the n-th request gets: None (forwarded), an HTTP status to answer instead (e.g. 503, or 404 for an
endpoint an older server lacks), or "drop" to close the connection without an answer, as a worker that restarts
mid-request does; ``vanish()`` stops it listening, so that the next connections are refused. Failed requests never reach the server, so what the server holds stays deterministic.
``latency`` (seconds) is added to every request's round trip, as between two clouds (the benchmarks use it too).
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FlakyProxy:
    def __init__(self, target_url: str, fail: Callable[[int, str, str], int | str | None] | None = None, latency: float = 0.0) -> None:
        target = urlsplit(target_url)
        counter = itertools.count(1)
        self.failures = 0
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, failed ones too
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path))
                time.sleep(latency)
                outcome = fail(next(counter), self.command, self.path) if fail else None
                if outcome is not None:
                    proxy.failures += 1
                    if outcome == "drop":
                        self.close_connection = True
                        return
                    self.send_response(outcome)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def vanish(self) -> None:
        """Stop listening: connections from now on are refused, as by a server that went away."""
        self.server.shutdown()
        self.server.server_close()

    def __exit__(self, *exc) -> None:
        self.vanish()
