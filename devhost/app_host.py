"""DevHost: the whole local Functions host — worker + HTTP front + admin API + queue pollers + timers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from devhost.admin import AdminApi
from devhost.config import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, FunctionConfig
from devhost.environ import EnvironChanges
from devhost.errors import ConfigError, DevHostError
from devhost.http_front import DEFAULT_PORT, HttpFront
from devhost.keys import HostKeys
from devhost.queue_poller import RECEIVE_VISIBILITY_TIMEOUT, MessageDescriber, QueuePoller, QueueServiceFactory
from devhost.timers import TimerClock, TimerScheduler
from devhost.worker import FunctionHost

log = logging.getLogger("devhost")


class DevHost:
    """Serve a folder-per-function app locally, like ``func start`` does.

    ``environ`` holds app settings layered over ``os.environ`` for the host's lifetime (the worker and the
    functions read settings from the process environment, as in Azure); they are restored on ``stop()``.
    ``queue_service`` builds the storage clients queue triggers need (required when there are any);
    ``keys`` turns on ``authLevel`` checks (default: not enforced, as with Core Tools); ``timer_clock`` drives
    timer triggers (default: real UTC time). ``function_log_level`` hides a function's own console records
    below that level; ``describe_message`` adds a short text to each queue message's console line.
    ``queue_lease_seconds`` is how long a received queue message stays invisible (renewed every half lease while
    its function runs): 10 minutes as in Azure; shorter lets a test see a killed host's messages come back.
    Use as a context manager, or ``start()``/``stop()``. ``url`` is ``http://127.0.0.1:<port>``.
    """

    def __init__(
        self,
        app_dir: Path | str,
        *,
        http_port: int = DEFAULT_PORT,
        environ: Mapping[str, str] | None = None,
        queue_service: QueueServiceFactory | None = None,
        keys: HostKeys | None = None,
        timer_clock: TimerClock | None = None,
        verbose: bool = False,
        console: bool = True,
        function_log_level: int | None = None,
        describe_message: MessageDescriber | None = None,
        queue_lease_seconds: float = RECEIVE_VISIBILITY_TIMEOUT,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.functions = FunctionHost(
            self.app_dir, console=console, verbose=verbose, function_log_level=function_log_level
        )
        self.keys = keys or HostKeys.none()
        self.http: HttpFront | None = None
        self.admin: AdminApi | None = None
        self.pollers: list[QueuePoller] = []
        self.timers: list[TimerScheduler] = []
        self._queue_service = queue_service
        self._timer_clock = timer_clock
        self._describe_message = describe_message
        self._queue_lease_seconds = queue_lease_seconds
        self._http_port = http_port
        self._environ = dict(environ or {})
        self._environ_changes = EnvironChanges()

    @property
    def url(self) -> str:
        if self.http is None:
            raise DevHostError("DevHost is not started")
        return self.http.url

    def start(self) -> DevHost:
        self._apply_environ()
        try:
            self.functions.start()
            self.admin = AdminApi(self.functions, self.keys)
            self.http = HttpFront(self.functions, port=self._http_port, keys=self.keys, admin=self.admin)
            for config in self.functions.functions.values():
                if config.trigger_type == QUEUE_TRIGGER:
                    self.pollers.append(self._poller(config))
                elif config.trigger_type == TIMER_TRIGGER:
                    self.timers.append(TimerScheduler(config, self.functions.invoke_timer, self._timer_clock))
            for poller in self.pollers:
                poller.start()
            for timer in self.timers:
                timer.start()
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
        for timer in self.timers:
            timer.stop()
        self.pollers.clear()
        self.timers.clear()
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        if running:
            log.info("devhost stopped")
        self.functions.stop()
        self._environ_changes.undo()

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _poller(self, config: FunctionConfig) -> QueuePoller:
        if self._queue_service is None:
            raise ConfigError(
                f"Function '{config.name}' is queue-triggered: DevHost needs queue_service= "
                "(a factory of queue service clients for a connection name)"
            )
        service = self._queue_service(config.connection, os.environ)
        return QueuePoller(
            self.functions,
            config,
            service,
            self.functions.host_config.queues,
            describe=self._describe_message,
            lease_seconds=self._queue_lease_seconds,
        )

    def _print_functions(self) -> None:
        log.info("Functions:")
        pollers = {p.function: p for p in self.pollers}
        timers = {t.function: t for t in self.timers}
        for name, config in self.functions.functions.items():
            if config.trigger_type == HTTP_TRIGGER:
                prefix = self.functions.host_config.route_prefix
                path = "/".join(p for p in (prefix, config.route) if p)
                methods = ",".join(config.methods or ("ANY",))
                log.info("    %s: [%s] %s/%s (authLevel %s)", name, methods, self.url, path, config.auth_level)
            elif name in pollers:
                log.info("    %s: queueTrigger %s", name, pollers[name].queue_url)
            elif name in timers:
                due = timers[name].next_occurrence().strftime("%Y-%m-%dT%H:%M:%SZ")
                log.info("    %s: timerTrigger '%s' (UTC), next %s", name, config.schedule, due)
            else:
                log.info("    %s: %s (not triggered by devhost)", name, config.trigger.type)
        if self.keys.enforced:
            log.info("Function keys are enforced (authLevel: function needs a key, admin the master key)")
        else:
            log.info("Function keys are not enforced (no keys configured: authLevel is ignored, as with Core Tools)")

    def _apply_environ(self) -> None:
        for key, value in self._environ.items():
            self._environ_changes.set(key, value)
