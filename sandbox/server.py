"""The base every stand-in builds on: a small threaded HTTP(S) server on 127.0.0.1.

A stand-in declares `routes()` (method, path pattern, route name, handler) and may override the hooks
`authenticate`, `response_headers`, `fault_body` and `not_found`. The base gives all of them the same test
controls: a request log (`log`, `requests_to(route)`), fault injection (`faults.add(...)`), a global
`latency`, a gate that holds requests until the test opens it (`holding(...)`), `down()`/`up()` on the same port,
and `reset()`.

Order of work for one request: read it, match a route, `authenticate` (a refusal may rename the route, e.g.
Key Vault's "challenge"), sleep `latency`, apply the first pending fault for that route name, else call the
handler. A request enters `log` as soon as it is routed (status 0 while it is being answered), and its status
is set before the answer is written, so a client that got an answer always finds it there with that status.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from sandbox.faults import Fault, Faults
from sandbox.gate import Gate
from sandbox.tls import LocalCA

log = logging.getLogger(__name__)

Clock = Callable[[], float]

_HANDSHAKE_TIMEOUT = 10.0
_IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may sit idle before the server closes it


@dataclass
class Recorded:
    """One request as the stand-in saw it, and what it answered (`status` 0: no answer yet, or the connection
    was reset without one)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(repr=False)
    headers: CaseInsensitiveDict[str] = field(repr=False)
    body: bytes = field(repr=False)
    json: Any | None = field(repr=False)
    status: int = 0
    route: str = "unknown"
    at: float = 0.0

    @property
    def form(self) -> dict[str, str]:
        """The body as an `application/x-www-form-urlencoded` form (first value of each field)."""
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    def arg(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()


@dataclass
class Response:
    """What a handler answers. `body`: None (empty), bytes, str (text/plain) or anything JSON-serialisable.

    `route` renames the logged route; used by refusals such as Key Vault's authentication challenge.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    route: str | None = None

    def encode(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


Handler = Callable[[Recorded, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    """`pattern` must match the whole path; its named groups are passed to the handler."""

    method: str
    pattern: str
    name: str
    handler: Handler
    ignore_case: bool = False

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = re.fullmatch(self.pattern, path, re.IGNORECASE if self.ignore_case else re.NOFLAG)
        return None if found is None else {k: v or "" for k, v in found.groupdict().items()}


class StandIn:
    """A local stand-in for one outside service. Plain HTTP, or HTTPS when given a `LocalCA`."""

    name = "stand-in"

    def __init__(
        self, *, ca: LocalCA | None = None, clock: Clock = time.time, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.ca = ca
        self.clock = clock
        self.host = host
        self.latency = 0.0
        self.gate: Gate | None = None
        self.faults = Faults()
        self.log: list[Recorded] = []
        self._lock = threading.RLock()  # guards `log` and the subclass's state
        self._routes = self.routes()
        self._tls = ca.server_context() if ca else None
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{self.name} has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.name} is already running")
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{self.name}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        log.debug("%s listening at %s", self.name, self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        log.debug("%s stopped", self.name)

    def down(self) -> None:
        """Stop listening and drop open connections: clients now get 'connection refused'."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        self.stop()

    def up(self) -> None:
        """Listen again on the same port."""
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- test controls

    @contextlib.contextmanager
    def holding(self, *routes: str, max_seconds: float = 60.0) -> Iterator[Gate]:
        """Hold every request to `routes` until the block ends (at most `max_seconds` each)."""
        gate = Gate(frozenset(routes), max_seconds)
        self.gate = gate
        try:
            yield gate
        finally:
            self.gate = None
            gate.open()

    def requests_to(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.log if r.route == route]

    def reset(self) -> None:
        """Clear the log, pending faults, latency and counters. Stored state (secrets, upgrades …) stays."""
        with self._lock:
            self.log.clear()
            self.faults.clear()
            self.latency = 0.0
            self.on_reset()

    # --- hooks for subclasses

    def routes(self) -> list[Route]:
        return []

    def authenticate(self, request: Recorded) -> Response | None:
        """None lets the request through; a Response refuses it. `request.route` is the matched route's name
        (or "unknown"); the request is not in `log` yet."""
        return None

    def response_headers(self, request: Recorded) -> dict[str, str]:
        """Headers added to every answer (handler, refusal or fault) unless the answer sets them itself."""
        return {}

    def fault_body(self, status: int, retry_after: int | None) -> Any:
        """The body of an injected fault that gave none, in the service's own error shape."""
        phrase = _phrase(status)
        return {"error": {"code": phrase.replace(" ", ""), "message": f"Injected fault: {status} {phrase}."}}

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status if fault.status is not None else 500
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        body = fault.body if fault.body is not None else self.fault_body(status, fault.retry_after)
        return Response(status, body, headers)

    def not_found(self, request: Recorded) -> Response:
        return Response(404, self.fault_body(404, None))

    def on_reset(self) -> None:
        """Clear the subclass's counters (called by `reset()` with the lock held)."""

    # --- request handling

    def _serve(self, connection: _Connection) -> None:
        target = urlsplit(connection.path)
        body = connection.read_body()
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(connection.headers.items())
        request = Recorded(
            method=connection.command,
            path=target.path,
            query=parse_qs(target.query, keep_blank_values=True),
            headers=headers,
            body=body,
            json=_json_or_none(body),
            at=self.clock(),
        )
        route, params = self._match(request)
        request.route = route.name if route else "unknown"  # `authenticate` may look at it
        refusal = self.authenticate(request)
        if refusal is not None and refusal.route:
            request.route = refusal.route
        with self._lock:
            self.log.append(request)

        if self.latency > 0:
            time.sleep(self.latency)
        if (gate := self.gate) is not None:
            gate.hold(request.route)
        fault = self.faults.take(request.route)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and fault.reset_connection:
            self._answered(request)
            connection.reset()
            return

        if fault is not None and fault.status is not None:
            response = self.fault_response(fault)
        elif refusal is not None:
            response = refusal
        elif route is not None:
            response = self._call(route, request, params)
        else:
            response = self.not_found(request)
        response.headers = {**self.response_headers(request), **response.headers}
        request.status = response.status
        self._answered(request)
        connection.respond(response)

    def _match(self, request: Recorded) -> tuple[Route | None, dict[str, str]]:
        for route in self._routes:
            params = route.match(request.method, request.path)
            if params is not None:
                return route, params
        return None, {}

    def _call(self, route: Route, request: Recorded, params: dict[str, str]) -> Response:
        try:
            return route.handler(request, params)
        except Exception:
            log.exception("%s: handler for route %s failed", self.name, route.name)
            return Response(500, self.fault_body(500, None))

    def _answered(self, request: Recorded) -> None:
        log.debug("%s %s %s -> %s (%s)", self.name, request.method, request.path, request.status, request.route)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_or_none(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Connection(BaseHTTPRequestHandler):
    """One client connection (keep-alive: it serves requests until the client or the server closes it)."""

    protocol_version = "HTTP/1.1"
    server_version = "sandbox"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: _Server

    def _dispatch(self) -> None:
        self.server.stand_in._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def respond(self, response: Response) -> None:
        payload, content_type = response.encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if content_type and not any(name.lower() == "content-type" for name in response.headers):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def reset(self) -> None:
        """Abort the connection with a TCP reset and no answer."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the connection was reset or dropped: nothing left to flush
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the stand-in logs each request itself, without query strings or bodies."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent clients must not hit a full listen backlog

    def __init__(self, address: tuple[str, int], stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Connection)

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection: socket.socket = request
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out at once
        context = self.stand_in._tls
        if context is not None:
            try:
                request.settimeout(_HANDSHAKE_TIMEOUT)
                connection = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                log.debug("%s: TLS handshake failed", self.stand_in.name, exc_info=True)
                return
        with self._open_lock:
            self._open.add(connection)
        try:
            _Connection(connection, client_address, self)
        finally:
            with self._open_lock:
                self._open.discard(connection)
            connection.close()

    def drop_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: connection error: %r", self.stand_in.name, sys.exception())
