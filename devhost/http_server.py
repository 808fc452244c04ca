"""A small threaded HTTP(S) server on loopback for local stand-ins: one ``serve(Request) -> Reply`` function.

The base reads the request (``Content-Length`` or chunked body, with a size limit), hands every method —
including ones ``http.server`` does not know, which it would answer with an HTML 501 — to ``serve``, and writes
the reply (no body for HEAD, 1xx, 204 and 304). It listens with a backlog of 128, as ASP.NET Core's Kestrel
does, so a burst of clients is queued by the kernel instead of being reset. Used by the Functions host's HTTP
front, the local callback receiver and the tests' receivers.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from devhost.errors import DevHostError

log = logging.getLogger("devhost.http")

LISTEN_BACKLOG = 128
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit (100 MB)


@dataclass(frozen=True)
class Request:
    """One request as received: ``target`` is the request-target (path and query), headers keep repeats."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def header(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), default)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Serve = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class LoopbackServer:
    """``serve`` behind a ThreadingHTTPServer in a background thread; TLS when ``tls`` is given.

    ``start(fallback_to_free_port=True)`` takes a free port when ``port`` is taken. Context manager or
    ``start()``/``stop()``; ``port`` and ``url`` once started.
    """

    def __init__(
        self,
        serve: Serve,
        *,
        port: int = 0,
        bind: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        name: str = "http",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        host_name: str | None = None,
    ) -> None:
        self.serve = serve
        self.name = name
        self.max_body_bytes = max_body_bytes
        self._bind, self._port, self._tls = bind, port, tls
        self._host_name = host_name or bind  # for ``url``: "localhost" for a TLS certificate issued to it
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise DevHostError(f"{self.name} server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host_name}:{self.port}"

    def start(self, *, fallback_to_free_port: bool = False) -> Self:
        try:
            server = _Server((self._bind, self._port), _handler(self))
        except OSError as exc:
            if not fallback_to_free_port or self._port == 0:
                raise DevHostError(f"cannot listen on {self._bind}:{self._port}: {exc.strerror or exc}") from exc
            server = _Server((self._bind, 0), _handler(self))
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"devhost-{self.name}", daemon=True
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


def _handler(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "devhost"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the serve function logs what it wants

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method token, known or not, reaches serve()
                return self._serve
            raise AttributeError(name)

        def _serve(self) -> None:
            try:
                body = _read_body(self.headers, self.rfile, owner.max_body_bytes)
            except _BadRequest as exc:
                self._write(Reply(exc.status), close=True)
                return
            request = Request(self.command, self.path, list(self.headers.items()), body)
            try:
                reply = owner.serve(request)
            except Exception:
                log.exception("%s: %s %s failed", owner.name, self.command, request.path)
                reply = Reply(HTTPStatus.INTERNAL_SERVER_ERROR)
            self._write(reply)

        def _write(self, reply: Reply, *, close: bool = False) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            bodiless = reply.status < 200 or reply.status in (204, 304)
            if not bodiless:
                self.send_header("Content-Length", str(len(reply.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD" and reply.body and not bodiless:
                self.wfile.write(reply.body)

    return Handler


def _read_body(headers: Message, rfile: BufferedIOBase, max_body_bytes: int) -> bytes:
    """The request body (``Content-Length`` or chunked), refused rather than read when over the size limit."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(rfile, max_body_bytes)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise _BadRequest(HTTPStatus.BAD_REQUEST) from None
    if length < 0:
        raise _BadRequest(HTTPStatus.BAD_REQUEST)
    if length > max_body_bytes:
        raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    return rfile.read(length)


def _read_chunked(rfile: BufferedIOBase, max_body_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            size = int(rfile.readline(1024).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST) from None
        if size == 0:
            while rfile.readline(1024).strip():  # trailers
                pass
            return b"".join(chunks)
        total += size
        if total > max_body_bytes:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        chunks.append(rfile.read(size))
        rfile.readline(1024)
