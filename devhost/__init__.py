"""A local Azure Functions host for folder-per-function (function.json) Python apps.

Built on Microsoft's own Python worker library (``azure_functions_runtime_v1``) driven in-process: an HTTP
front for HTTP triggers (with ``authLevel`` keys when given), queue polling for queue triggers (through a
queue-client factory the app supplies), NCRONTAB timer triggers and the admin API to run a function by hand.
Generic: it knows nothing of this app (``localrun/`` is the app's local stack). Never deployed (.funcignore).
"""

from devhost.app_host import DevHost
from devhost.errors import ConfigError, DevHostError, FunctionLoadError, InvocationError
from devhost.keys import HostKeys
from devhost.queue_poller import QueueServiceFactory
from devhost.timers import SteppedClock, TimerClock
from devhost.worker import FunctionHost, HttpResult, QueueTriggerMetadata

__all__ = [
    "ConfigError",
    "DevHost",
    "DevHostError",
    "FunctionHost",
    "FunctionLoadError",
    "HostKeys",
    "HttpResult",
    "InvocationError",
    "QueueServiceFactory",
    "QueueTriggerMetadata",
    "SteppedClock",
    "TimerClock",
]
