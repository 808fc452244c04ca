"""A real local HTTP server in front of the harness, so a browser can load what the app answers.

`GET /api/follow/…` goes to `Follow.main` through `AppHarness.follow` with the browser's own headers (no function
key: the server never adds one), built on this server's base URL, so every link on a page points back here. Any
other path is a plain 404 (the keyed routes would need a key a browser does not have).

    with PageServer(app) as server:
        page.goto(server.url_for(location))     # the Location the app handed out, moved onto this server
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from support.harness import AppHarness

FORWARDED_HEADERS = ("accept", "accept-language", "user-agent")


class PageServer:
    def __init__(self, app: AppHarness) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path?query, headers) of every GET, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="page-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url_for(self, location: str) -> str:
        parts = urlsplit(location)
        return f"{self.base_url}{parts.path}?{parts.query}"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.path, headers))
                if not self.path.startswith("/api/follow/"):
                    self.send_error(404)
                    return
                forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
                answer = server.app.follow(server.base_url + self.path, forwarded, base_url=server.base_url)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test asserts on `server.requests`."""

        return Handler
