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
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self

from devhost.http_server import LoopbackServer, Reply, Request
from shared.tracking.callbacks import sign

log = logging.getLogger("localrun.callbacks")

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
        self._server = LoopbackServer(
            self._serve, port=port, tls=context, name="callbacks", max_body_bytes=MAX_BODY_BYTES, host_name="localhost"
        )

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"{self._server.url}{PATH}"

    def start(self, *, fallback_to_free_port: bool = True) -> Self:
        self._server.start(fallback_to_free_port=fallback_to_free_port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def verify(self, timestamp: str, signature: str, body: bytes) -> bool:
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return False
        return hmac.compare_digest(sign(self.signing_key, timestamp, body), signature)

    def _serve(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "POST")])
        ok = self.verify(
            request.header("X-Upgrade-Timestamp", "") or "",
            request.header("X-Upgrade-Signature", "") or "",
            request.body,
        )
        try:
            document = json.loads(request.body)
        except ValueError:
            document = None
        resource = document if isinstance(document, dict) else None
        self.received.append(ReceivedCallback(request.path, ok, resource))
        if resource is None:
            log.warning("callback %s: body is not a JSON object", request.path)
        else:
            level = logging.INFO if ok else logging.WARNING
            log.log(level, "callback %s: upgrade %s %s (signature %s)", request.path, resource.get("upgradeId"),
                    resource.get("status"), "ok" if ok else "INVALID")  # fmt: skip
        return Reply(HTTPStatus.NO_CONTENT if ok else HTTPStatus.UNAUTHORIZED)
