"""A TCP proxy on loopback that delays every request by a fixed time: Azurite as far away as Azure Storage is
from an instance in its region (a few ms per operation), so the bench can show what the number of storage round
trips *in sequence* costs where it matters, apart from this machine's CPU.

Bytes from the client reach the server `delay` seconds after they arrived (order kept); answers pass at once.
One asyncio loop in a daemon thread serves every connection. Bench-only, never deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType


class LatencyProxy:
    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"latency-proxy-{upstream_port}", daemon=True)

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        loop = asyncio.get_running_loop()

        async def requests() -> None:
            while chunk := await client_in.read(65536):
                loop.call_later(self.delay, server_out.write, chunk)  # equal delays: sent in arrival order
            loop.call_later(self.delay, server_out.close)

        async def answers() -> None:
            while chunk := await server_in.read(65536):
                client_out.write(chunk)
            client_out.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(requests(), answers())


def delayed_connection_string(connection_string: str, proxies: dict[str, LatencyProxy]) -> str:
    """The Azurite connection string with each proxied service's port replaced by its proxy's."""
    for proxy in proxies.values():
        connection_string = connection_string.replace(f":{proxy.upstream_port}/", f":{proxy.port}/")
    return connection_string
