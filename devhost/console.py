"""Console logging for the local host: one readable line per record.

The library worker does not configure logging (in Azure the proxy worker does: root logger at INFO, records
shipped to the host over gRPC, worker/SDK "system" categories kept off the local console). This module plays
that part in-process: a root handler that prints user and host records, tagged with the function whose
invocation emitted them, and hides the worker's own chatter unless ``verbose``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

# Logger prefixes the Python worker treats as system logs (not shown on the local console by Core Tools).
SYSTEM_LOG_PREFIXES = ("azure.functions", "azure_functions_runtime", "proxy_worker")


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL  source: message`` on a single line (tracebacks only when verbose)."""

    def __init__(self, *, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S") + f".{int(record.msecs):03d}"
        source = getattr(record, "function_name", None) or record.name
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if self.verbose:
                message = f"{message}\n{self.formatException(record.exc_info)}"
            else:
                message = f"{message} | {type(exc).__name__}: {exc}"
        if not self.verbose:
            message = message.replace("\r\n", "\n").replace("\n", "\\n")
        return f"{clock} {record.levelname:<7} {source}: {message}"


class ConsoleHandler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (so redirections, e.g. pytest's capture, are honoured)."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        current_function: Callable[[], str | None] | None = None,
        function_level: int | None = None,
    ) -> None:
        super().__init__(logging.DEBUG if verbose else logging.INFO)
        self.verbose = verbose
        self.function_level = function_level
        self._current_function = current_function
        self.setFormatter(ConsoleFormatter(verbose=verbose))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.verbose and record.name.startswith(SYSTEM_LOG_PREFIXES):
            return False
        if self._current_function is not None and not hasattr(record, "function_name"):
            record.function_name = self._current_function()
        if (
            self.function_level is not None
            and getattr(record, "function_name", None)
            and record.levelno < self.function_level
        ):
            return False  # concise console: a function's own records only from this level up
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class ConsoleLogging:
    """Installs a ConsoleHandler on the root logger and undoes exactly that on ``uninstall()``."""

    # The host's own storage traffic would otherwise log every HTTP request at INFO.
    _QUIET = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")

    def __init__(
        self,
        *,
        level: int,
        verbose: bool = False,
        current_function: Callable[[], str | None] | None = None,
        function_level: int | None = None,
    ) -> None:
        self.handler = ConsoleHandler(verbose=verbose, current_function=current_function, function_level=function_level)
        self._level = logging.DEBUG if verbose else level
        self._saved: dict[str, int] = {}

    def install(self) -> None:
        root = logging.getLogger()
        self._saved[""] = root.level
        root.setLevel(self._level)
        for name in self._QUIET:
            self._saved[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.WARNING)
        root.addHandler(self.handler)

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for name, level in self._saved.items():
            logging.getLogger(name or None).setLevel(level)
        self._saved.clear()
