"""A receiver for Partner Center Upgrade Functions callbacks, standard library only (docs/webhooks.md).

Run it (the key is the value of the Key Vault secret `callback-signing-key`)::

    CALLBACK_SIGNING_KEY='<secret value>' python examples/webhook_receiver.py --host 127.0.0.1 --port 8080

and it prints one JSON line per new final upgrade. Use it from code::

    from webhook_receiver import make_server, verify

    server = make_server("127.0.0.1", 8080, signing_key, on_event=lambda event: print(event["status"]))
    server.serve_forever()

What it does with each POST:
- refuses bodies over 1 MiB (413) and requests without a valid signature or with a timestamp more than
  `tolerance` seconds (default 300) from this machine's clock (401): `verify()`;
- refuses bodies that are not a JSON object with `upgradeId` and `status` (400);
- is idempotent on `upgradeId` + `status`: the app retries a delivery that got no 2xx (up to 5 attempts, each
  with a new timestamp and signature), so the same final state can arrive more than once. The first one is
  handed to `on_event`; later ones are answered 200 without calling it again. While one delivery of a key is
  being handled, a concurrent one gets 409 (the app retries it later);
- answers 500 when `on_event` raises, so the app retries, and 200 otherwise.

The "seen" record is in memory here; a real receiver keeps it where its side effects are (a unique key in its
database), so a restart does not re-run them.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_PREFIX = "sha256="
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_TOLERANCE_SECONDS = 300

log = logging.getLogger("webhook_receiver")

Event = dict[str, Any]
Answer = tuple[HTTPStatus, str]  # the status and message of the JSON answer


def sign(signing_key: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`, the app's X-Upgrade-Signature."""
    digest = hmac.new(signing_key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(  # noqa: PLR0917 - the signature other code and tests call positionally
    signing_key: bytes,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when `signature` is the app's signature of `body` at `timestamp`, and `timestamp` is fresh.

    `signing_key` is the UTF-8 bytes of the callback signing key; `timestamp` and `signature` are the
    X-Upgrade-Timestamp and X-Upgrade-Signature headers; `body` is the raw request body, byte for byte (do not
    re-serialise parsed JSON). A timestamp more than `tolerance` seconds before or after `now` (default: this
    machine's clock) is refused, which bounds how long a captured request can be replayed.
    """
    timestamp = (timestamp or "").strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = sign(signing_key, timestamp, body).encode("ascii")
    offered = (signature or "").strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, offered)


class DeliveryLog:
    """Which (upgradeId, status) events were handled, and which are being handled right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: set[tuple[str, str]] = set()
        self._busy: set[tuple[str, str]] = set()

    def begin(self, key: tuple[str, str]) -> str:
        """'new' (the caller must handle it, then call finish), 'duplicate' or 'busy'."""
        with self._lock:
            if key in self._done:
                return "duplicate"
            if key in self._busy:
                return "busy"
            self._busy.add(key)
            return "new"

    def finish(self, key: tuple[str, str], *, handled: bool) -> None:
        with self._lock:
            self._busy.discard(key)
            if handled:
                self._done.add(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._done


def make_server(
    host: str,
    port: int,
    signing_key: bytes,
    on_event: Callable[[Event], None],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    deliveries: DeliveryLog | None = None,
    clock: Callable[[], float] = time.time,
) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer bound to (host, port) (port 0 picks a free one: see `server.server_address`).

    Call `serve_forever()` (or run it in a thread) and `shutdown()` + `server_close()` to stop it. `on_event`
    gets each new final status resource (a dict) once per `upgradeId` + `status`.
    """
    log_of_deliveries = deliveries if deliveries is not None else DeliveryLog()

    class Handler(BaseHTTPRequestHandler):
        server_version = "UpgradeWebhookReceiver/1.0"

        def do_POST(self) -> None:
            event = _read_event(self, signing_key, clock=clock, tolerance=tolerance)
            if isinstance(event, tuple):
                self._answer(*event)
                return
            self._answer(*_handle_once(event, log_of_deliveries, on_event))

        def _answer(self, status: HTTPStatus, message: str) -> None:
            payload = json.dumps({"status": status.value, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((host, port), Handler)


def _read_event(
    request: BaseHTTPRequestHandler, signing_key: bytes, *, clock: Callable[[], float], tolerance: int
) -> Event | Answer:
    """The POSTed event once its size, signature, timestamp and shape check out; else the refusal to answer."""
    length = request.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return HTTPStatus.LENGTH_REQUIRED, "Content-Length is required"
    if int(length) > MAX_BODY_BYTES:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large"
    body = request.rfile.read(int(length))
    timestamp = request.headers.get("X-Upgrade-Timestamp", "")
    signature = request.headers.get("X-Upgrade-Signature", "")
    if not verify(signing_key, timestamp, signature, body, now=clock(), tolerance=tolerance):
        log.warning("refused a callback: bad signature or stale timestamp")
        return HTTPStatus.UNAUTHORIZED, "invalid signature or timestamp"
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return HTTPStatus.BAD_REQUEST, "body is not JSON"
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in ("upgradeId", "status")):
        return HTTPStatus.BAD_REQUEST, "upgradeId and status are required"
    return event


def _handle_once(event: Event, deliveries: DeliveryLog, on_event: Callable[[Event], None]) -> Answer:
    """Hand a new event to `on_event`, once per upgradeId + status; what to answer the app."""
    key = (event["upgradeId"].lower(), event["status"])
    state = deliveries.begin(key)
    if state == "duplicate":
        return HTTPStatus.OK, "duplicate; already handled"
    if state == "busy":
        return HTTPStatus.CONFLICT, "this event is being handled; retry later"
    try:
        on_event(event)
    except Exception:
        log.exception("handling upgrade %s (%s) failed; the app will retry", key[0], key[1])
        deliveries.finish(key, handled=False)
        return HTTPStatus.INTERNAL_SERVER_ERROR, "handler failed"
    deliveries.finish(key, handled=True)
    return HTTPStatus.OK, "handled"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Receive signed Partner Center upgrade callbacks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--tolerance", type=int, default=DEFAULT_TOLERANCE_SECONDS, help="max clock skew (s)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM); the app only calls https")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    key = os.environ.get("CALLBACK_SIGNING_KEY")
    if not key:
        print("set CALLBACK_SIGNING_KEY to the value of the callback-signing-key secret", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    def print_event(event: Event) -> None:
        print(json.dumps(event, separators=(",", ":")), flush=True)

    server = make_server(args.host, args.port, key.encode("utf-8"), print_event, tolerance=args.tolerance)
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    log.info("listening on %s://%s:%d", scheme, *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
