"""A callback receiver on https://localhost:<port> (listening on 127.0.0.1), with a certificate from the sandbox's
local CA: for localhost, or for the `names` given (a receiver that poses as hooks.example.test)."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Self

from devhost.http_server import LoopbackServer, Reply, Request
from sandbox.tls import LocalCA


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    def __init__(self, ca: LocalCA, status: int = 204, names: tuple[str, ...] = ()) -> None:
        self.status = status
        self.deliveries: list[Delivery] = []
        self._server = LoopbackServer(
            self._serve, tls=ca.server_context(*names), name="receiver", host_name="localhost"
        )

    def _serve(self, request: Request) -> Reply:
        self.deliveries.append(Delivery(request.path, dict(request.headers), request.body))
        return Reply(self.status)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"{self._server.url}/hooks/upgrades"

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.stop()
