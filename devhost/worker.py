"""FunctionHost: a function.json app loaded into Microsoft's Python worker, and its functions invoked.

The worker itself runs in a ``WorkerSession`` (``devhost.worker_session``); this module turns HTTP requests,
queue messages and timer ticks into invocations shaped as the Functions host sends them, and the worker's
responses back into results. The worker keeps its state in module globals, so only one FunctionHost can be
active per process (Azure also runs one app per worker process).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from devhost.config import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, FunctionConfig, HostConfig, load_functions
from devhost.console import ConsoleLogging
from devhost.errors import DevHostError, InvocationError
from devhost.worker_session import WorkerSession

log = logging.getLogger("devhost")

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# Bindings the local host feeds (triggers) or reads back (outputs); anything else is reported at start-up.
_SUPPORTED_BINDINGS = {HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, "http"}


@dataclass(frozen=True)
class HttpResult:
    """An HTTP response as the worker shaped it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class QueueTriggerMetadata:
    """The queue message properties the host passes as trigger metadata."""

    id: str
    dequeue_count: int
    insertion_time: datetime | None = None
    expiration_time: datetime | None = None
    next_visible_time: datetime | None = None
    pop_receipt: str = ""


class FunctionHost:
    """Loads a function.json app into the Python worker and invokes its functions.

    ``start()`` raises ``FunctionLoadError`` (with the worker's message) if any function cannot be
    loaded, ``ConfigError`` for an invalid host.json. ``invoke_http``/``invoke_queue`` may be called from
    many threads at once; they raise ``InvocationError`` when the function fails.
    """

    _active: ClassVar[FunctionHost | None] = None
    _active_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        app_dir: Path | str,
        *,
        console: bool = True,
        verbose: bool = False,
        function_log_level: int | None = None,
    ) -> None:
        """``function_log_level``: show a function's own log records on the console only from this level
        (default: host.json ``logging.logLevel``, as Core Tools does); host lines are always shown."""
        self.app_dir = Path(app_dir).resolve()
        self.verbose = verbose
        self.function_log_level = function_log_level
        self.host_config = HostConfig()
        self.functions: dict[str, FunctionConfig] = {}
        self.worker_capabilities: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._console = console
        self._logging: ConsoleLogging | None = None
        self._session = WorkerSession(self.app_dir)
        self._function_ids: dict[str, str] = {}
        self._started = False

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Index the app, start the worker and load every function; stops at the first failure."""
        with FunctionHost._active_lock:
            if FunctionHost._active is not None:
                raise DevHostError(
                    "another FunctionHost is already running in this process (the worker is process-global)"
                )
            FunctionHost._active = self
        began = time.perf_counter()
        try:
            self.host_config = HostConfig.load(self.app_dir)
            if self._console:
                self._logging = ConsoleLogging(
                    level=self.host_config.log_level,
                    verbose=self.verbose,
                    current_function=self._session.current_function,
                    function_level=self.function_log_level,
                )
                self._logging.install()
            functions = load_functions(self.app_dir, self.host_config, os.environ)
            self.worker_capabilities = self._session.open()
            for function in functions:
                self._function_ids[function.name] = self._session.load_function(function)
                self.functions[function.name] = function
                _warn_unsupported_bindings(function)
            self._started = True
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - began
        log.info(
            "Worker loaded %d function(s) from %s in %.0f ms",
            len(self.functions),
            self.app_dir,
            self.startup_seconds * 1000,
        )

    def stop(self) -> None:
        """Stop the worker (waits for running sync functions) and release the process-wide slot."""
        if FunctionHost._active is not self:
            return
        self._started = False
        try:
            self._session.close()
            self.functions.clear()
            self._function_ids.clear()
        finally:
            if self._logging is not None:
                self._logging.uninstall()
                self._logging = None
            with FunctionHost._active_lock:
                FunctionHost._active = None

    def __enter__(self) -> FunctionHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------- invocation
    def invoke_http(
        self,
        function: str,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        body: bytes,
        route_params: Mapping[str, str],
        trace_parent: str | None = None,
    ) -> HttpResult:
        """Invoke an HTTP-triggered function with a request shaped like the host's ``RpcHttp``."""
        config = self._function(function, HTTP_TRIGGER)
        protos = self._session.protos
        http = protos.RpcHttp(
            method=method.upper(),
            url=url,
            headers={k.lower(): v for k, v in headers.items()},
            query={k: v for k, v in query.items() if v},
            params=dict(route_params),
        )
        if body:  # the host only sets a body when there is one; raw bytes if the worker asked for them
            if "RawHttpBodyBytes" in self.worker_capabilities:
                http.body.CopyFrom(protos.TypedData(bytes=body))
            else:
                http.body.CopyFrom(protos.TypedData(string=body.decode("utf-8", "replace")))
        inputs = [protos.ParameterBinding(name=config.trigger.name, data=protos.TypedData(http=http))]
        response = self._invoke(config, inputs, {}, trace_parent)
        return _http_result(config, response)

    def invoke_queue(self, function: str, body: str | bytes, metadata: QueueTriggerMetadata) -> None:
        """Invoke a queue-triggered function with the decoded message and its trigger metadata."""
        config = self._function(function, QUEUE_TRIGGER)
        protos = self._session.protos
        typed = protos.TypedData
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if config.trigger.data_type == "binary":
            data = typed(bytes=body if isinstance(body, bytes) else body.encode("utf-8"))
        else:
            data = typed(string=text)
        inputs = [protos.ParameterBinding(name=config.trigger.name, data=data)]
        self._invoke(config, inputs, _queue_trigger_metadata(typed, function, text, metadata), None)

    def invoke_timer(self, function: str, payload: Mapping[str, Any]) -> None:
        """Invoke a timer-triggered function with the ``TimerInfo`` JSON the host sends."""
        config = self._function(function, TIMER_TRIGGER)
        protos = self._session.protos
        data = protos.TypedData(json=json.dumps(payload))
        trigger_metadata = {"sys": protos.TypedData(json=json.dumps(_sys_metadata(function)))}
        self._invoke(config, [protos.ParameterBinding(name=config.trigger.name, data=data)], trigger_metadata, None)

    def trigger_type(self, function: str) -> str | None:
        """The loaded function's trigger type (lower-case), or None when no such function is loaded."""
        config = self.functions.get(function)
        return config.trigger_type if config is not None and self._started else None

    # ----------------------------------------------------------------------------------------- internals
    def _invoke(
        self,
        config: FunctionConfig,
        inputs: Sequence[Any],
        trigger_metadata: Mapping[str, Any],
        trace_parent: str | None,
    ) -> Any:
        protos = self._session.protos
        invocation_id = str(uuid.uuid4())
        request = protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=self._function_ids[config.name],
            input_data=list(inputs),
            trigger_metadata=dict(trigger_metadata),
        )
        request.trace_context.trace_parent = _child_traceparent(trace_parent)
        try:
            response = self._session.invoke(config.name, request, timeout=self.host_config.function_timeout)
        except TimeoutError:
            message = f"Timeout value of {self.host_config.function_timeout:g} s was exceeded by function"
            raise _failed(config.name, invocation_id, message, verbose=self.verbose) from None
        if response.result.status != protos.StatusResult.Success:
            exc = response.result.exception
            raise _failed(config.name, invocation_id, exc.message, exc.stack_trace, verbose=self.verbose)
        return response

    def _function(self, name: str, trigger_type: str) -> FunctionConfig:
        if not self._started:
            raise DevHostError("FunctionHost is not started")
        config = self.functions.get(name)
        if config is None:
            raise DevHostError(f"no function named {name!r}")
        if config.trigger_type != trigger_type:
            raise DevHostError(f"function {name!r} is triggered by {config.trigger.type}, not {trigger_type}")
        return config


def _failed(
    function: str, invocation_id: str, message: str, stack_trace: str = "", *, verbose: bool
) -> InvocationError:
    """One console line per failure (the worker's stack trace only when verbose), whatever made it fail."""
    if verbose and stack_trace:
        log.error("Function '%s' failed (Id=%s): %s\n%s", function, invocation_id, message, stack_trace.rstrip())
    else:
        log.error("Function '%s' failed (Id=%s): %s", function, invocation_id, message)
    return InvocationError(function, invocation_id, message, stack_trace)


def _queue_trigger_metadata(typed: Any, function: str, text: str, metadata: QueueTriggerMetadata) -> dict[str, Any]:
    """Types as the host sends them: strings as string, numbers and dates JSON-encoded."""
    trigger_metadata = {
        "Id": typed(string=metadata.id),
        "DequeueCount": typed(json=json.dumps(metadata.dequeue_count)),
        "PopReceipt": typed(string=metadata.pop_receipt),
        "QueueTrigger": typed(string=text),
        "sys": typed(json=json.dumps(_sys_metadata(function))),
    }
    for key, moment in (
        ("InsertionTime", metadata.insertion_time),
        ("ExpirationTime", metadata.expiration_time),
        ("NextVisibleTime", metadata.next_visible_time),
    ):
        if moment is not None:
            trigger_metadata[key] = typed(json=json.dumps(moment.astimezone(UTC).isoformat()))
    return trigger_metadata


def _sys_metadata(function: str) -> dict[str, str]:
    return {
        "MethodName": function,
        "UtcNow": datetime.now(UTC).isoformat(),
        "RandGuid": str(uuid.uuid4()),
    }


def _http_result(config: FunctionConfig, response: Any) -> HttpResult:
    output = config.http_output
    data = None
    if output is not None and output.name == "$return":
        data = response.return_value if response.HasField("return_value") else None
    elif output is not None:
        data = next((o.data for o in response.output_data if o.name == output.name), None)
    kind = data.WhichOneof("data") if data is not None else None
    if data is None or kind is None:
        return HttpResult(200, [], b"")  # no response set: the host answers 200 OK, empty body
    if kind != "http":  # a plain value returned for an http output: the host sends it as content
        body = _typed_bytes(data)
        content_type = "application/json" if kind == "json" or _is_json(body) else "text/plain"
        if kind == "bytes":
            content_type = "application/octet-stream"
        return HttpResult(200, [("Content-Type", f"{content_type}; charset=utf-8")], body)
    http = data.http
    # Set-Cookie headers, which the worker moves into ``http.cookies``, are not sent: this app sets none.
    headers = list(http.headers.items())
    status = int(http.status_code) if http.status_code else 200
    return HttpResult(status, headers, _typed_bytes(http.body))


def _warn_unsupported_bindings(config: FunctionConfig) -> None:
    for binding in config.bindings:
        if binding.type.lower() not in _SUPPORTED_BINDINGS:
            log.warning(
                "Function '%s': devhost does not implement '%s' bindings ('%s' %s); %s",
                config.name,
                binding.type,
                binding.name,
                binding.direction,
                "the function is never triggered" if binding.is_trigger else "it gets no value / is not written",
            )


def _typed_bytes(data: Any) -> bytes:
    kind = data.WhichOneof("data")
    if kind == "bytes":
        return bytes(data.bytes)
    if kind in ("string", "json"):
        return str(getattr(data, kind)).encode("utf-8")
    if kind in ("int", "double"):
        return str(getattr(data, kind)).encode("ascii")
    return b""


def _is_json(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict | list)
    except ValueError:
        return False


def _child_traceparent(parent: str | None) -> str:
    """A W3C traceparent for the invocation, continuing the caller's trace when it sent one."""
    match = _TRACEPARENT.fullmatch(parent.strip().lower()) if parent else None
    trace_id = match[1] if match else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
