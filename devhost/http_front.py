"""The HTTP front: serves HTTP-triggered functions on ``http://127.0.0.1:<port>/<routePrefix>/<route>``.

Requests are turned into the ``RpcHttp`` the real host sends (lower-cased headers with repeats joined by
",", query values likewise, route values, the raw body bytes) and the worker's response is written back as
it shaped it. Unknown path -> 404; known path, wrong method -> 405 with ``Allow``; function failure -> 500
with an empty body (as the host does). As with Core Tools locally, ``authLevel`` keys are NOT enforced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from devhost.config import HTTP_TRIGGER, FunctionConfig
from devhost.errors import DevHostError, InvocationError
from devhost.routes import Route, RouteTable, RouteTemplate
from devhost.worker import FunctionHost, HttpResult

log = logging.getLogger("devhost.http")

DEFAULT_PORT = 7071  # Core Tools' default
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit (100 MB)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


def build_route_table(functions: Iterable[FunctionConfig], route_prefix: str) -> RouteTable:
    routes = []
    for function in functions:
        if function.trigger_type != HTTP_TRIGGER:
            continue
        template = "/".join(p for p in (route_prefix.strip("/"), function.route) if p)
        routes.append(Route(function.name, RouteTemplate(template), function.methods))
    return RouteTable(routes)


class HttpFront:
    """A ThreadingHTTPServer in front of a started FunctionHost."""

    def __init__(self, host: FunctionHost, *, port: int = DEFAULT_PORT, bind: str = "127.0.0.1") -> None:
        self.host = host
        self.routes = build_route_table(host.functions.values(), host.host_config.route_prefix)
        self._bind = bind
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise DevHostError("HTTP front is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._bind}:{self.port}"

    def start(self) -> None:
        try:
            server = ThreadingHTTPServer((self._bind, self._port), _handler_class(self))
        except OSError as exc:
            raise DevHostError(f"cannot listen on {self._bind}:{self._port}: {exc.strerror or exc}") from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="devhost-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, host_header: str | None
    ) -> HttpResult:
        """Route one request and invoke its function; never raises."""
        split = urlsplit(target)
        match, allowed = self.routes.resolve(split.path, method)
        if match is None:
            if allowed:
                return HttpResult(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", ", ".join(allowed))], b"")
            return HttpResult(HTTPStatus.NOT_FOUND, [], b"")
        authority = host_header or f"{self._bind}:{self.port}"
        try:
            return self.host.invoke_http(
                match.route.function,
                method=method,
                url=f"http://{authority}{split.path}{'?' + split.query if split.query else ''}",
                headers=_join_repeated(headers, lower=True),
                query=_join_repeated(parse_qsl(split.query, keep_blank_values=True), lower=False),
                body=body,
                route_params=match.params,
                trace_parent=next((v for k, v in headers if k.lower() == "traceparent"), None),
            )
        except InvocationError:
            return HttpResult(HTTPStatus.INTERNAL_SERVER_ERROR, [], b"")  # already logged by the host
        except Exception:
            log.exception("devhost could not invoke %s", match.route.function)
            return HttpResult(HTTPStatus.INTERNAL_SERVER_ERROR, [], b"")


def _join_repeated(pairs: Iterable[tuple[str, str]], *, lower: bool) -> dict[str, str]:
    """Repeated names joined with "," as ASP.NET's ``StringValues.ToString()`` does."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _handler_class(front: HttpFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "devhost"

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request is written by _serve instead

        def _serve(self) -> None:
            started = time.perf_counter()
            try:
                body = self._read_body()
            except _BadRequest as exc:
                self._respond(HttpResult(exc.status, [], b""), started, close=True)
                return
            result = front.handle(self.command, self.path, list(self.headers.items()), body, self.headers["Host"])
            self._respond(result, started)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length_header = self.headers.get("Content-Length")
            if not length_header:
                return b""
            try:
                length = int(length_header)
            except ValueError:
                raise _BadRequest(HTTPStatus.BAD_REQUEST) from None
            if length < 0:
                raise _BadRequest(HTTPStatus.BAD_REQUEST)
            if length > MAX_BODY_BYTES:
                raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return self.rfile.read(length)

        def _read_chunked(self) -> bytes:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise _BadRequest(HTTPStatus.BAD_REQUEST) from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _respond(self, result: HttpResult, started: float, *, close: bool = False) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s -> %d (%.0f ms)", self.command, urlsplit(self.path).path, result.status, elapsed)
            self.send_response(result.status)
            for name, value in result.headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            bodiless = result.status < 200 or result.status in (204, 304)
            if not bodiless:
                self.send_header("Content-Length", str(len(result.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and result.body and not bodiless:
                self.wfile.write(result.body)

    for method in _METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)
    return Handler


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status
