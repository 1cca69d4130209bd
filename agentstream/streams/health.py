"""The worker's small HTTP server: ``/metrics`` (Prometheus) and ``/healthz``.

Runs in a daemon thread so that a long flush on the event loop never delays a probe.
``/healthz`` answers 200 while the consumer holds partitions and the last flush succeeded
(or there was nothing to do yet), 503 with the reason otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer", "HealthState"]


class HealthState:
    """Written by the event loop, read by the HTTP thread (plain attribute reads are atomic)."""

    def __init__(self) -> None:
        self.last_flush_ok = True
        self.last_error = ""
        self.assigned: Callable[[], int] = lambda: 0

    def check(self) -> tuple[bool, dict[str, object]]:
        assigned = self.assigned()
        ok = assigned > 0 and self.last_flush_ok
        body: dict[str, object] = {
            "ok": ok,
            "assigned_partitions": assigned,
            "last_flush_ok": self.last_flush_ok,
        }
        if self.last_error:
            body["last_error"] = self.last_error
        return ok, body


class HealthServer:
    def __init__(self, port: int, registry: CollectorRegistry, state: HealthState) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path.startswith("/healthz"):
                    ok, body = state.check()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain", b"try /metrics or /healthz\n")

            def _send(self, code: int, ctype: str, payload: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the worker's own logs

        self._server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agentstream-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
