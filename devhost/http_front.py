"""The HTTP front: serves HTTP-triggered functions on ``http://127.0.0.1:<port>/<routePrefix>/<route>``.

Requests are turned into the ``RpcHttp`` the real host sends (lower-cased headers with repeats joined by
",", query values likewise, route values, the raw body bytes) and the worker's response is written back as
it shaped it. As the host does: unknown path -> 404; known path, other method (any token, known to HTTP or
not) -> 405 with ``Allow``; ``authLevel`` checked against the configured keys -> 401 with an empty body;
function failure -> 500 with an empty body. ``/admin/…`` goes to the admin API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from devhost.admin import ADMIN_PREFIX, AdminApi
from devhost.config import HTTP_TRIGGER, FunctionConfig
from devhost.errors import InvocationError
from devhost.http_server import LoopbackServer, Reply, Request
from devhost.keys import HostKeys, presented_key
from devhost.routes import Route, RouteTable, RouteTemplate
from devhost.worker import FunctionHost

log = logging.getLogger("devhost.http")

DEFAULT_PORT = 7071  # Core Tools' default


def build_route_table(functions: Iterable[FunctionConfig], route_prefix: str) -> RouteTable:
    routes = []
    for function in functions:
        if function.trigger_type != HTTP_TRIGGER:
            continue
        template = "/".join(p for p in (route_prefix.strip("/"), function.route) if p)
        routes.append(Route(function.name, RouteTemplate(template), function.methods))
    return RouteTable(routes)


class HttpFront(LoopbackServer):
    """A LoopbackServer in front of a started FunctionHost (and its admin API)."""

    def __init__(
        self,
        host: FunctionHost,
        *,
        port: int = DEFAULT_PORT,
        bind: str = "127.0.0.1",
        keys: HostKeys | None = None,
        admin: AdminApi | None = None,
    ) -> None:
        super().__init__(self.handle, port=port, bind=bind, name="http")
        self.host = host
        self.keys = keys or HostKeys.none()
        self.admin = admin
        self.routes = build_route_table(host.functions.values(), host.host_config.route_prefix)

    def handle(self, request: Request) -> Reply:
        """Route one request, check its key and invoke its function; one console line per request."""
        started = time.perf_counter()
        reply = self._answer(request)
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s -> %d (%.0f ms)", request.method, request.path, reply.status, elapsed)
        return reply

    def _answer(self, request: Request) -> Reply:
        if self.admin is not None and request.path.lower().startswith(ADMIN_PREFIX):
            return self.admin.handle(request)
        match, allowed = self.routes.resolve(request.path, request.method)
        if match is None:
            if allowed:
                return Reply(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", ", ".join(allowed))])
            return Reply(HTTPStatus.NOT_FOUND)
        function = match.route.function
        key = presented_key(request.headers, request.target)
        if not self.keys.allows(self.host.functions[function].auth_level, function, key):
            return Reply(HTTPStatus.UNAUTHORIZED)
        split = urlsplit(request.target)
        authority = request.header("Host") or f"{self._bind}:{self.port}"
        try:
            result = self.host.invoke_http(
                function,
                method=request.method,
                url=f"http://{authority}{split.path}{'?' + split.query if split.query else ''}",
                headers=_join_repeated(request.headers, lower=True),
                query=_join_repeated(parse_qsl(split.query, keep_blank_values=True), lower=False),
                body=request.body,
                route_params=match.params,
                trace_parent=request.header("traceparent"),
            )
        except InvocationError:
            return Reply(HTTPStatus.INTERNAL_SERVER_ERROR)  # already logged by the host
        return Reply(result.status, result.headers, result.body)


def _join_repeated(pairs: Iterable[tuple[str, str]], *, lower: bool) -> dict[str, str]:
    """Repeated names joined with "," as ASP.NET's ``StringValues.ToString()`` does."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
