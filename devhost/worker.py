"""FunctionHost: Microsoft's Python worker (``azure_functions_runtime_v1``) driven in-process.

In Azure the Functions host talks FunctionRpc over gRPC to a "proxy worker", which hands each message to
the library worker's async handlers. Here the same handlers are called directly with the same protobuf
messages, on an asyncio loop that runs in a dedicated thread:

    worker_init_request -> functions_metadata_request -> function_load_request (per function)
    -> invocation_request (per HTTP request / queue message, from any thread)

Sync functions run on the worker's own thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``), async functions
on the loop, exactly as in Azure. The worker keeps its state in module globals, so only one FunctionHost
can be active per process (Azure also runs one app per worker process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import azure_functions_runtime_v1 as worker_runtime  # type: ignore[import-untyped]

from devhost.config import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, FunctionConfig, HostConfig, load_functions
from devhost.console import ConsoleLogging
from devhost.errors import DevHostError, FunctionLoadError, InvocationError
from devhost.protos import load_protos

log = logging.getLogger("devhost")

HOST_VERSION = "4.1040.0"  # what the worker is told it talks to (a current 4.x host)
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


@dataclass
class _WorkerRequest:
    """What the library worker's handlers take: ``.request`` (a StreamingMessage) and ``.properties``."""

    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


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
        self._protos: ModuleType | None = None
        self._function_ids: dict[str, str] = {}
        self._invocations: dict[str, str] = {}  # invocation id -> function name, for log tagging
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._added_sys_path = False
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
                    current_function=self._current_function,
                    function_level=self.function_log_level,
                )
                self._logging.install()
            functions = load_functions(self.app_dir, self.host_config, os.environ)
            self._protos = load_protos()
            self._start_loop()
            if str(self.app_dir) not in sys.path:
                sys.path.insert(0, str(self.app_dir))  # the app's own packages (e.g. shared/) import absolutely
                self._added_sys_path = True
            worker_runtime.start_threadpool_executor()  # the proxy worker does this before WorkerInitRequest
            self._init_worker()
            for function in functions:
                self._load_function(function)
                self._warn_unsupported_bindings(function)
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
            worker_runtime.stop_threadpool_executor()
            if self._loop is not None and self._loop_thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop_thread.join(timeout=10)
                if not self._loop_thread.is_alive():
                    self._loop.close()
            self._loop, self._loop_thread = None, None
            self._forget_app_modules()
            if self._added_sys_path:
                sys.path.remove(str(self.app_dir))
                self._added_sys_path = False
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
        protos = self._require_protos()
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
        return self._http_result(config, response)

    def invoke_queue(self, function: str, body: str | bytes, metadata: QueueTriggerMetadata) -> None:
        """Invoke a queue-triggered function with the decoded message and its trigger metadata."""
        config = self._function(function, QUEUE_TRIGGER)
        protos = self._require_protos()
        typed = protos.TypedData
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if config.trigger.data_type == "binary":
            data = typed(bytes=body if isinstance(body, bytes) else body.encode("utf-8"))
        else:
            data = typed(string=text)
        # Types as the host sends them: strings as string, numbers and dates JSON-encoded.
        trigger_metadata = {
            "Id": typed(string=metadata.id),
            "DequeueCount": typed(json=json.dumps(metadata.dequeue_count)),
            "PopReceipt": typed(string=metadata.pop_receipt),
            "QueueTrigger": typed(string=text),
            "sys": typed(json=json.dumps(self._sys_metadata(function))),
        }
        for key, moment in (
            ("InsertionTime", metadata.insertion_time),
            ("ExpirationTime", metadata.expiration_time),
            ("NextVisibleTime", metadata.next_visible_time),
        ):
            if moment is not None:
                trigger_metadata[key] = typed(json=json.dumps(moment.astimezone(UTC).isoformat()))
        inputs = [protos.ParameterBinding(name=config.trigger.name, data=data)]
        self._invoke(config, inputs, trigger_metadata, None)

    def invoke_timer(self, function: str, payload: Mapping[str, Any]) -> None:
        """Invoke a timer-triggered function with the ``TimerInfo`` JSON the host sends."""
        config = self._function(function, TIMER_TRIGGER)
        protos = self._require_protos()
        data = protos.TypedData(json=json.dumps(payload))
        trigger_metadata = {"sys": protos.TypedData(json=json.dumps(self._sys_metadata(function)))}
        self._invoke(config, [protos.ParameterBinding(name=config.trigger.name, data=data)], trigger_metadata, None)

    def trigger_type(self, function: str) -> str | None:
        """The loaded function's trigger type (lower-case), or None when no such function is loaded."""
        config = self.functions.get(function)
        return config.trigger_type if config is not None and self._started else None

    # ----------------------------------------------------------------------------------------- internals
    def _init_worker(self) -> None:
        protos = self._require_protos()
        init = self._call(
            worker_runtime.worker_init_request(
                _WorkerRequest(
                    protos.StreamingMessage(
                        worker_init_request=protos.WorkerInitRequest(
                            host_version=HOST_VERSION,
                            function_app_directory=str(self.app_dir),
                            capabilities={},
                        )
                    ),
                    {"host": "127.0.0.1", "protos": protos},
                )
            )
        )
        self._check(init.result, "WorkerInitRequest")
        self.worker_capabilities = dict(init.capabilities)
        metadata = self._call(
            worker_runtime.functions_metadata_request(
                _WorkerRequest(
                    protos.StreamingMessage(
                        functions_metadata_request=protos.FunctionsMetadataRequest(
                            function_app_directory=str(self.app_dir)
                        )
                    )
                )
            )
        )
        self._check(metadata.result, "FunctionsMetadataRequest")
        if not metadata.use_default_metadata_indexing:
            raise DevHostError("the worker indexed the app itself (v2 model); devhost runs function.json apps")

    def _load_function(self, config: FunctionConfig) -> None:
        protos = self._require_protos()
        function_id = str(uuid.uuid4())
        direction = protos.BindingInfo.Direction
        data_type = protos.BindingInfo.DataType
        metadata = protos.RpcFunctionMetadata(
            name=config.name,
            function_id=function_id,
            directory=str(config.directory),
            script_file=str(config.script_file),
            entry_point=config.entry_point,
            language="python",
            bindings={
                b.name: protos.BindingInfo(
                    type=b.type, direction=direction.Value(b.direction), data_type=data_type.Value(b.data_type)
                )
                for b in config.bindings
            },
            raw_bindings=list(config.raw_bindings),
        )
        response = self._call(
            worker_runtime.function_load_request(
                _WorkerRequest(
                    protos.StreamingMessage(
                        function_load_request=protos.FunctionLoadRequest(function_id=function_id, metadata=metadata)
                    )
                )
            )
        )
        if response.result.status != protos.StatusResult.Success:
            exc = response.result.exception
            raise FunctionLoadError(config.name, exc.message, exc.stack_trace)
        self.functions[config.name] = config
        self._function_ids[config.name] = function_id

    def _invoke(
        self,
        config: FunctionConfig,
        inputs: Sequence[Any],
        trigger_metadata: Mapping[str, Any],
        trace_parent: str | None,
    ) -> Any:
        protos = self._require_protos()
        invocation_id = str(uuid.uuid4())
        request = protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=self._function_ids[config.name],
            input_data=list(inputs),
            trigger_metadata=dict(trigger_metadata),
        )
        request.trace_context.trace_parent = _child_traceparent(trace_parent)
        self._invocations[invocation_id] = config.name
        try:
            response = self._call(self._invocation(invocation_id, request), timeout=self.host_config.function_timeout)
        except TimeoutError:
            message = f"Timeout value of {self.host_config.function_timeout:g} s was exceeded by function"
            log.error("Function '%s' failed (Id=%s): %s", config.name, invocation_id, message)
            raise InvocationError(config.name, invocation_id, message) from None
        finally:
            self._invocations.pop(invocation_id, None)
        if response.result.status != protos.StatusResult.Success:
            exc = response.result.exception
            if self.verbose and exc.stack_trace:
                log.error(
                    "Function '%s' failed (Id=%s): %s\n%s",
                    config.name,
                    invocation_id,
                    exc.message,
                    exc.stack_trace.rstrip(),
                )
            else:
                log.error("Function '%s' failed (Id=%s): %s", config.name, invocation_id, exc.message)
            raise InvocationError(config.name, invocation_id, exc.message, exc.stack_trace)
        return response

    async def _invocation(self, invocation_id: str, request: Any) -> Any:
        protos = self._require_protos()
        # Task-local, so log records from async functions can be attributed to this invocation
        # (for sync functions the worker sets it on its pool thread itself).
        worker_runtime.invocation_id_cv.set(invocation_id)
        return await worker_runtime.invocation_request(
            _WorkerRequest(protos.StreamingMessage(invocation_request=request))
        )

    def _http_result(self, config: FunctionConfig, response: Any) -> HttpResult:
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

    def _function(self, name: str, trigger_type: str) -> FunctionConfig:
        if not self._started:
            raise DevHostError("FunctionHost is not started")
        config = self.functions.get(name)
        if config is None:
            raise DevHostError(f"no function named {name!r}")
        if config.trigger_type != trigger_type:
            raise DevHostError(f"function {name!r} is triggered by {config.trigger.type}, not {trigger_type}")
        return config

    def _sys_metadata(self, function: str) -> dict[str, str]:
        return {
            "MethodName": function,
            "UtcNow": datetime.now(UTC).isoformat(),
            "RandGuid": str(uuid.uuid4()),
        }

    def _warn_unsupported_bindings(self, config: FunctionConfig) -> None:
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

    def _current_function(self) -> str | None:
        invocation_id = worker_runtime.invocation_id_cv.get()
        return self._invocations.get(invocation_id) if invocation_id else None

    def _check(self, result: Any, step: str) -> None:
        if result.status != self._require_protos().StatusResult.Success:
            raise DevHostError(f"{step} failed in the worker: {result.exception.message}")

    def _require_protos(self) -> ModuleType:
        if self._protos is None:
            raise DevHostError("FunctionHost is not started")
        return self._protos

    # ----------------------------------------------------------------------------------------- event loop
    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._loop_thread = threading.Thread(target=run, name="devhost-worker-loop", daemon=True)
        self._loop_thread.start()
        ready.wait()

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        if self._loop is None:
            coro.close()
            raise DevHostError("FunctionHost is not started")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def _forget_app_modules(self) -> None:
        """Drop this app's ``__app__.*`` modules and search path so another app can load in this process."""
        prefix = str(self.app_dir) + os.sep
        for name, module in list(sys.modules.items()):
            if name.startswith("__app__.") and str(getattr(module, "__file__", "") or "").startswith(prefix):
                del sys.modules[name]
        from azure_functions_runtime_v1 import loader  # noqa: PLC0415 - private detail, only needed here

        search_path = getattr(loader, "_submodule_dirs", None)
        if isinstance(search_path, list) and str(self.app_dir) in search_path:
            search_path.remove(str(self.app_dir))


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
