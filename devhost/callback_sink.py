"""A callback receiver for local runs: ``https://localhost:<port>/callbacks`` with the sandbox's certificate.

The app only sends callbacks to ``https`` URLs on ``CALLBACK_ALLOWED_HOSTS`` (``localhost`` in sandbox mode), so
a plain-HTTP receiver cannot take them. This one presents the sandbox CA's certificate for localhost (which the
app trusts through the sandbox CA bundle), checks ``X-Upgrade-Signature`` against the callback signing key the
sandbox seeded, prints one console line per delivery and answers ``204`` (``401`` for a bad signature, so the
app's retry behaviour can be watched too).
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devhost.errors import DevHostError
from shared.tracking.callbacks import sign

log = logging.getLogger("devhost.callbacks")

DEFAULT_CALLBACK_PORT = 7072
PATH = "/callbacks"
MAX_BODY_BYTES = 1024 * 1024
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class ReceivedCallback:
    path: str
    signature_ok: bool
    body: dict[str, Any] | None


class CallbackSink:
    def __init__(self, context: ssl.SSLContext, signing_key: bytes, *, port: int = DEFAULT_CALLBACK_PORT) -> None:
        self.signing_key = signing_key
        self.received: list[ReceivedCallback] = []
        self._context = context
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise DevHostError("callback receiver is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}{PATH}"

    def start(self, *, fallback_to_free_port: bool = True) -> CallbackSink:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        except OSError:
            if not fallback_to_free_port or self._port == 0:
                raise
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="devhost-callbacks", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def verify(self, timestamp: str, signature: str, body: bytes) -> bool:
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        return hmac.compare_digest(sign(self.signing_key, timestamp, body), signature)


def _handler(sink: CallbackSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "devhost-callbacks"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, close=True)
                return
            body = self.rfile.read(length)
            ok = sink.verify(
                self.headers.get("X-Upgrade-Timestamp", ""), self.headers.get("X-Upgrade-Signature", ""), body
            )
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            resource = document if isinstance(document, dict) else None
            sink.received.append(ReceivedCallback(self.path, ok, resource))
            if resource is None:
                log.warning("callback %s: body is not a JSON object", self.path)
            else:
                log.log(
                    logging.INFO if ok else logging.WARNING,
                    "callback %s: upgrade %s %s (signature %s)",
                    self.path,
                    resource.get("upgradeId"),
                    resource.get("status"),
                    "ok" if ok else "INVALID",
                )
            self._answer(HTTPStatus.NO_CONTENT if ok else HTTPStatus.UNAUTHORIZED)

        def _answer(self, status: HTTPStatus, *, close: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()

    return Handler
