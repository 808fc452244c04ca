"""DevHost: the whole local Functions host — worker + HTTP front + queue pollers — for one app folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from devhost.config import HTTP_TRIGGER, QUEUE_TRIGGER
from devhost.errors import DevHostError
from devhost.http_front import DEFAULT_PORT, HttpFront
from devhost.queue_poller import MessageDescriber, QueuePoller
from devhost.storage import queue_service_client
from devhost.worker import FunctionHost

log = logging.getLogger("devhost")


class DevHost:
    """Serve a folder-per-function app locally, like ``func start`` does.

    ``environ`` holds app settings layered over ``os.environ`` for the host's lifetime (the worker and the
    functions read settings from the process environment, as in Azure); they are restored on ``stop()``.
    ``function_log_level`` hides a function's own console records below that level (host lines stay);
    ``describe_message`` adds a short text to each queue message's console line (see ``MessageDescriber``).
    Use as a context manager, or ``start()``/``stop()``. ``url`` is ``http://127.0.0.1:<port>``.
    """

    def __init__(
        self,
        app_dir: Path | str,
        *,
        http_port: int = DEFAULT_PORT,
        environ: Mapping[str, str] | None = None,
        verbose: bool = False,
        console: bool = True,
        function_log_level: int | None = None,
        describe_message: MessageDescriber | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.functions = FunctionHost(
            self.app_dir, console=console, verbose=verbose, function_log_level=function_log_level
        )
        self._describe_message = describe_message
        self.http: HttpFront | None = None
        self.pollers: list[QueuePoller] = []
        self._http_port = http_port
        self._environ = dict(environ or {})
        self._saved_environ: dict[str, str | None] = {}

    @property
    def url(self) -> str:
        if self.http is None:
            raise DevHostError("DevHost is not started")
        return self.http.url

    def start(self) -> DevHost:
        self._apply_environ()
        try:
            self.functions.start()
            self.http = HttpFront(self.functions, port=self._http_port)
            for config in self.functions.functions.values():
                if config.trigger_type == QUEUE_TRIGGER:
                    service = queue_service_client(config.connection, os.environ)
                    poller = QueuePoller(
                        self.functions,
                        config,
                        service,
                        self.functions.host_config.queues,
                        describe=self._describe_message,
                    )
                    poller.start()
                    self.pollers.append(poller)
            self.http.start()
        except BaseException:
            self.stop()
            raise
        self._print_functions()
        return self

    def stop(self) -> None:
        running = self.http is not None
        if self.http is not None:
            self.http.stop()
            self.http = None
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        if running:
            log.info("devhost stopped")
        self.functions.stop()
        self._restore_environ()

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _print_functions(self) -> None:
        log.info("Functions:")
        pollers = {p.function: p for p in self.pollers}
        for name, config in self.functions.functions.items():
            if config.trigger_type == HTTP_TRIGGER:
                prefix = self.functions.host_config.route_prefix
                path = "/".join(p for p in (prefix, config.route) if p)
                log.info("    %s: [%s] %s/%s", name, ",".join(config.methods or ("ANY",)), self.url, path)
            elif name in pollers:
                log.info("    %s: queueTrigger %s", name, pollers[name].queue_url)
            else:
                log.info("    %s: %s (not triggered by devhost)", name, config.trigger.type)
        log.info("Function keys are not enforced locally (authLevel is ignored, as with Core Tools)")

    def _apply_environ(self) -> None:
        for key, value in self._environ.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_environ(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ.clear()
