"""A one-shot loopback HTTP server that receives the authorization response of one OAuth sign-in.

It listens on 127.0.0.1 only and accepts exactly one callback: a `GET` whose `state` matches the one this
sign-in sent. Anything else is refused and does not end the wait: a callback with another `state` (a stale
browser tab, a forged link) gets `400`, other paths (`/favicon.ico`, ...) get `404`. The browser sees a short
page telling the user to close the window. Nothing is logged: the request line carries the authorization code.

    with LoopbackReceiver(8400) as receiver:
        redirect_uri = receiver.redirect_uri   # http://localhost:8400, for the authorize URL
        receiver.expect(state)                 # the state that authorize URL carries
        ...send the user to the authorize URL...
        response = receiver.wait(timeout=300)  # {"code": ..., "state": ...} or {"error": ..., "state": ...}
"""

from __future__ import annotations

import errno
import hmac
import html
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
_REQUEST_TIMEOUT = 10.0  # a browser's idle pre-connection is dropped after this, never blocks the callback
_OAUTH_FIELDS = ("code", "state", "error")


class PortUnavailable(Exception):
    """The port could not be bound. The message says why, in one line."""


class CallbackTimeout(Exception):
    """No acceptable callback arrived in time."""


class LoopbackReceiver:
    def __init__(self, port: int) -> None:
        try:
            self._server = _Server((HOST, port), _Handler)
        except OSError as error:
            raise PortUnavailable(_bind_problem(port, error)) from None
        self._server.receiver = self
        self._expected_state: str | None = None
        self._response: dict[str, str] | None = None
        self._arrived = threading.Event()
        self._lock = threading.Lock()
        self.refused = 0  # callbacks refused for a wrong or missing state
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="consent-loopback", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to send to Entra: `localhost`, as registered (`http://localhost`, any port)."""
        return f"http://localhost:{self.port}"

    def expect(self, state: str) -> None:
        """Accept the callback that carries `state` (call before sending the user to the authorize URL)."""
        with self._lock:
            self._expected_state = state

    def wait(self, timeout: float) -> dict[str, str]:
        """The query parameters of the accepted callback. Raises CallbackTimeout after `timeout` seconds."""
        if not self._arrived.wait(timeout):
            raise CallbackTimeout(f"no sign-in response arrived within {timeout:g} seconds")
        with self._lock:
            assert self._response is not None
            return dict(self._response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def offer(self, params: dict[str, str]) -> bool:
        """Take `params` as the response if its state is the expected one and none was taken yet."""
        with self._lock:
            expected = self._expected_state
            state = params.get("state", "")
            if expected is None or self._response is not None or not hmac.compare_digest(state, expected):
                self.refused += 1
                return False
            self._response = params
        self._arrived.set()
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR lets a second run bind while the first run's connections sit in TIME_WAIT; on POSIX it never
    # lets two listeners share a port. On Windows it would, so there the port stays exclusive.
    allow_reuse_address = os.name != "nt"
    receiver: LoopbackReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT
    server_version = "consent-loopback"
    sys_version = ""

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        params = {name: values[0] for name, values in parse_qs(target.query, keep_blank_values=True).items()}
        if target.path not in ("", "/") or not any(field in params for field in _OAUTH_FIELDS):
            self._page(404, "Not found", "This address only receives the sign-in response of the consent tool.")
        elif not self.server.receiver.offer(params):
            self._page(
                400,
                "Sign-in response refused",
                "This response does not belong to the sign-in the consent tool is waiting for (its state does not "
                "match). Close this window and use the link the tool printed.",
            )
        elif "error" in params:
            self._page(
                200,
                "Sign-in did not complete",
                f"Entra ID answered {html.escape(params['error'])}. Close this window; the terminal says what to do.",
            )
        else:
            self._page(200, "Sign-in complete", "You can close this window and return to the terminal.")

    def _page(self, status: int, title: str, text: str) -> None:
        body = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the authorization code."""


def _bind_problem(port: int, error: OSError) -> str:
    if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return f"port {port} on {HOST} is in use; pass another with --port (8400-8999, or 0 for any free port)"
    if error.errno in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
        return f"not allowed to listen on port {port}; pass a port from 1024 up with --port (8400-8999 is usual)"
    return f"cannot listen on {HOST}:{port} ({error.strerror or error}); pass another port with --port"
