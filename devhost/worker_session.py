"""WorkerSession: Microsoft's Python worker (``azure_functions_runtime_v1``) driven in-process.

In Azure the Functions host talks FunctionRpc over gRPC to a "proxy worker", which hands each message to
the library worker's async handlers. Here the same handlers are called directly with the same protobuf
messages, on an asyncio loop that runs in a dedicated thread:

    worker_init_request -> functions_metadata_request -> function_load_request (per function)
    -> invocation_request (per HTTP request / queue message, from any thread)

Sync functions run on the worker's own thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``), async functions
on the loop, exactly as in Azure. The session moves messages and knows which function each running
invocation belongs to (for tagging log records); what goes into an invocation and what comes back is
``FunctionHost``'s business (``devhost.worker``). It is the only module that touches the worker library.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure_functions_runtime_v1 as worker_runtime  # type: ignore[import-untyped]

from devhost.config import FunctionConfig
from devhost.errors import DevHostError, FunctionLoadError
from devhost.protos import load_protos

HOST_VERSION = "4.1040.0"  # what the worker is told it talks to (a current 4.x host)


@dataclass
class _WorkerRequest:
    """What the library worker's handlers take: ``.request`` (a StreamingMessage) and ``.properties``."""

    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class WorkerSession:
    """The worker's asyncio loop thread and the messages that initialise it, load functions and invoke them.

    ``open()`` starts it and ``close()`` undoes everything it did to the process (loop, thread pool,
    ``sys.path``, imported app modules), so another app can be loaded in this process afterwards.
    """

    def __init__(self, app_dir: Path) -> None:
        self.app_dir = app_dir
        self._protos: ModuleType | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._added_sys_path = False
        self._invocations: dict[str, str] = {}  # invocation id -> function name, for log tagging

    @property
    def protos(self) -> ModuleType:
        """The FunctionRpc message classes, once the session is open."""
        if self._protos is None:
            raise DevHostError("FunctionHost is not started")
        return self._protos

    def open(self) -> dict[str, str]:
        """Start the worker and initialise it for the app; returns the capabilities the worker announced."""
        self._protos = load_protos()
        self._start_loop()
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))  # the app's own packages (e.g. shared/) import absolutely
            self._added_sys_path = True
        worker_runtime.start_threadpool_executor()  # the proxy worker does this before WorkerInitRequest
        return self._init_worker()

    def close(self) -> None:
        """Stop the worker (waits for running sync functions) and forget the app's modules and search path."""
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

    def load_function(self, config: FunctionConfig) -> str:
        """Load one function into the worker; returns the function id its invocations name."""
        protos = self.protos
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
        return function_id

    def invoke(self, function: str, request: Any, timeout: float | None) -> Any:
        """Run one of ``function``'s ``InvocationRequest``s and return the worker's ``InvocationResponse``;
        ``TimeoutError`` when it takes longer than ``timeout`` seconds."""
        invocation_id = request.invocation_id
        self._invocations[invocation_id] = function
        try:
            return self._call(self._invocation(invocation_id, request), timeout=timeout)
        finally:
            self._invocations.pop(invocation_id, None)

    def current_function(self) -> str | None:
        """The function whose invocation the calling thread or task runs, so its log records can be tagged."""
        invocation_id = worker_runtime.invocation_id_cv.get()
        return self._invocations.get(invocation_id) if invocation_id else None

    def _init_worker(self) -> dict[str, str]:
        protos = self.protos
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
        capabilities = dict(init.capabilities)
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
        return capabilities

    async def _invocation(self, invocation_id: str, request: Any) -> Any:
        protos = self.protos
        # Task-local, so log records from async functions can be attributed to this invocation
        # (for sync functions the worker sets it on its pool thread itself).
        worker_runtime.invocation_id_cv.set(invocation_id)
        return await worker_runtime.invocation_request(
            _WorkerRequest(protos.StreamingMessage(invocation_request=request))
        )

    def _check(self, result: Any, step: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise DevHostError(f"{step} failed in the worker: {result.exception.message}")

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
