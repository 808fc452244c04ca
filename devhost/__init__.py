"""A local Azure Functions host for this folder-per-function (function.json) Python app.

Built on Microsoft's own Python worker library (``azure_functions_runtime_v1``) driven in-process, an HTTP
front for HTTP triggers and Azurite/Azure Storage polling for queue triggers. Never deployed (.funcignore).
"""

from devhost.app_host import DevHost
from devhost.errors import ConfigError, DevHostError, FunctionLoadError, InvocationError
from devhost.worker import FunctionHost, HttpResult, QueueTriggerMetadata

__all__ = [
    "ConfigError",
    "DevHost",
    "DevHostError",
    "FunctionHost",
    "FunctionLoadError",
    "HttpResult",
    "InvocationError",
    "QueueTriggerMetadata",
]
