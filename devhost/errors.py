"""Errors raised by the local Functions host."""

from __future__ import annotations


class DevHostError(Exception):
    """Base class: the local host cannot do what was asked."""


class ConfigError(DevHostError):
    """host.json, a function.json or an app setting is invalid (the real host would refuse to start)."""


class FunctionLoadError(DevHostError):
    """A function could not be indexed or loaded; start-up stops, as it does on Azure.

    ``message`` is the worker's own message when the worker refused the function (parameter/binding
    mismatch, import error, syntax error), otherwise the host's indexing message.
    """

    def __init__(self, function_name: str, message: str, stack_trace: str = "") -> None:
        super().__init__(f"Function '{function_name}' failed to load: {message}")
        self.function_name = function_name
        self.message = message
        self.stack_trace = stack_trace


class InvocationError(DevHostError):
    """A function invocation failed; ``message`` is the worker's ``<ExceptionType>: <message>``."""

    def __init__(self, function_name: str, invocation_id: str, message: str, stack_trace: str = "") -> None:
        super().__init__(f"Function '{function_name}' failed: {message}")
        self.function_name = function_name
        self.invocation_id = invocation_id
        self.message = message
        self.stack_trace = stack_trace
