"""Reading a folder-per-function app the way the Functions host indexes it: host.json + */function.json.

Everything here is host-side work that happens before the Python worker sees a function: parsing
``host.json`` (``extensions.http``, ``extensions.queues``, ``functionTimeout``, ``logging.logLevel``),
reading each ``function.json``, resolving ``%AppSetting%`` expressions from the environment and
validating the trigger, with error messages modelled on the real host's.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devhost.errors import ConfigError, FunctionLoadError
from devhost.ncrontab import Schedule

HTTP_TRIGGER = "httptrigger"
QUEUE_TRIGGER = "queuetrigger"
TIMER_TRIGGER = "timertrigger"
DEFAULT_STORAGE_CONNECTION = "AzureWebJobsStorage"
DEFAULT_SCRIPT_FILE = "__init__.py"

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?$")
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 1,
}


def parse_timespan(value: object, setting: str) -> float:
    """Seconds in a .NET TimeSpan string as host.json writes them: ``[d.]hh:mm[:ss[.fffffff]]``."""
    match = _TIMESPAN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"host.json: {setting} must be a TimeSpan like '00:00:30', got {value!r}")
    days, hours, minutes = int(match["days"] or 0), int(match["h"]), int(match["m"])
    seconds = int(match["s"] or 0) + float(f"0.{match['f'] or 0}")
    if hours > 23 or minutes > 59 or seconds >= 60:
        raise ConfigError(f"host.json: {setting} is not a valid TimeSpan: {value!r}")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the defaults of WebJobs ``QueuesOptions`` (storage extension 5.x)."""

    batch_size: int = 16
    new_batch_threshold: int = (16 // 2) * (os.cpu_count() or 1)
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: Literal["base64", "none"] = "base64"

    @classmethod
    def from_host_json(cls, section: Mapping[str, Any]) -> QueueOptions:
        def integer(key: str, default: int, low: int, high: int) -> int:
            value = section.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"host.json: extensions.queues.{key} must be an integer in [{low}, {high}]")
            return value

        batch_size = integer("batchSize", 16, 1, 32)
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ConfigError("host.json: extensions.queues.messageEncoding must be 'base64' or 'none'")
        polling = parse_timespan(section.get("maxPollingInterval", "00:01:00"), "extensions.queues.maxPollingInterval")
        if polling < 0.1:
            raise ConfigError("host.json: extensions.queues.maxPollingInterval must be at least 00:00:00.1")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=integer("newBatchThreshold", (batch_size // 2) * (os.cpu_count() or 1), 0, 10_000),
            max_polling_interval=polling,
            visibility_timeout=parse_timespan(
                section.get("visibilityTimeout", "00:00:00"), "extensions.queues.visibilityTimeout"
            ),
            max_dequeue_count=integer("maxDequeueCount", 5, 1, 10_000),
            message_encoding="base64" if encoding == "base64" else "none",
        )


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json a local host acts on."""

    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float | None = 30 * 60.0  # dedicated-plan default; None = unbounded ("-1")
    log_level: int = logging.INFO
    functions: tuple[str, ...] | None = None  # host.json "functions": load only these

    @classmethod
    def load(cls, app_dir: Path) -> HostConfig:
        path = app_dir / "host.json"
        if not path.is_file():
            raise ConfigError(f"{app_dir} is not a function app: host.json not found")
        doc = _read_json(path)
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        if str(doc.get("version", "")) != "2.0":
            raise ConfigError(f"{path}: 'version' must be \"2.0\" (Functions runtime 2.x and later)")
        extensions = doc.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", "api")
        if not isinstance(prefix, str):
            raise ConfigError(f"{path}: extensions.http.routePrefix must be a string")
        timeout_value = doc.get("functionTimeout")
        timeout: float | None = cls.function_timeout
        if timeout_value is not None:
            timeout = None if str(timeout_value).strip() == "-1" else parse_timespan(timeout_value, "functionTimeout")
        functions = doc.get("functions")
        if functions is not None and not (isinstance(functions, list) and all(isinstance(f, str) for f in functions)):
            raise ConfigError(f"{path}: 'functions' must be a list of function names")
        return cls(
            route_prefix=prefix.strip("/"),
            queues=QueueOptions.from_host_json(extensions.get("queues") or {}),
            function_timeout=timeout,
            log_level=_function_log_level((doc.get("logging") or {}).get("logLevel") or {}),
            functions=tuple(functions) if functions is not None else None,
        )


@dataclass(frozen=True)
class Binding:
    """One entry of function.json ``bindings``; ``properties`` has ``%AppSetting%`` expressions resolved."""

    name: str
    type: str
    direction: Literal["in", "out", "inout"]
    data_type: str
    properties: Mapping[str, Any]

    @property
    def is_trigger(self) -> bool:
        return self.type.lower().endswith("trigger")

    def get(self, key: str, default: Any = None) -> Any:
        """A binding property, looked up case-insensitively like the host does."""
        for name, value in self.properties.items():
            if name.lower() == key.lower():
                return value
        return default


@dataclass(frozen=True)
class FunctionConfig:
    """An indexed function: what the host sends the worker in ``FunctionLoadRequest.metadata``."""

    name: str
    directory: Path
    script_file: Path
    entry_point: str
    bindings: tuple[Binding, ...]
    raw_bindings: tuple[str, ...]

    @property
    def trigger(self) -> Binding:
        return next(b for b in self.bindings if b.is_trigger)

    @property
    def trigger_type(self) -> str:
        return self.trigger.type.lower()

    @property
    def http_output(self) -> Binding | None:
        return next((b for b in self.bindings if b.type.lower() == "http" and b.direction == "out"), None)

    @property
    def queue_name(self) -> str:
        """The trigger's queue (resolved, lower-cased, validated at indexing)."""
        return str(self.trigger.get("queueName"))

    @property
    def connection(self) -> str:
        return str(self.trigger.get("connection") or DEFAULT_STORAGE_CONNECTION)

    @property
    def route(self) -> str:
        return str(self.trigger.get("route") or self.name).strip("/")

    @property
    def auth_level(self) -> str:
        """``authLevel`` of an HTTP trigger, lower-cased (the host's default is ``function``)."""
        return str(self.trigger.get("authLevel") or "function").lower()

    @property
    def schedule(self) -> str:
        """A timer trigger's NCRONTAB ``schedule`` (``%AppSetting%`` already resolved)."""
        return str(self.trigger.get("schedule") or "")

    @property
    def run_on_startup(self) -> bool:
        return self.trigger.get("runOnStartup") is True

    @property
    def methods(self) -> tuple[str, ...] | None:
        """Allowed HTTP methods (upper-case), or None for all."""
        methods = self.trigger.get("methods")
        return tuple(str(m).upper() for m in methods) if methods else None


def load_functions(app_dir: Path, host: HostConfig, settings: Mapping[str, str]) -> list[FunctionConfig]:
    """Index every ``<app_dir>/*/function.json`` (sorted by name), skipping disabled functions."""
    functions = []
    for path in sorted(app_dir.glob("*/function.json")):
        name = path.parent.name
        if host.functions is not None and name not in host.functions:
            continue
        doc = _read_json(path, function_name=name)
        if not isinstance(doc, dict):
            raise FunctionLoadError(name, "function.json must contain a JSON object")
        if doc.get("disabled") is True or _disabled_by_setting(name, settings):
            continue
        functions.append(_index_function(name, path.parent, doc, settings))
    return functions


def resolve_setting_expressions(value: str, settings: Mapping[str, str]) -> str:
    """Replace each ``%Name%`` with the app setting ``Name``; KeyError(expression) if one is not set."""

    def replace(match: re.Match[str]) -> str:
        setting = settings.get(match[1])
        if setting is None:
            raise KeyError(match[0])
        return setting

    return _SETTING_EXPRESSION.sub(replace, value)


def _index_function(name: str, directory: Path, doc: Mapping[str, Any], settings: Mapping[str, str]) -> FunctionConfig:
    raw = doc.get("bindings")
    if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
        raise FunctionLoadError(name, "function.json must have a 'bindings' list of objects")
    try:
        bindings = tuple(_binding(b, settings) for b in raw)
    except KeyError as exc:
        raise FunctionLoadError(
            name, f"Error indexing function 'Functions.{name}': '{exc.args[0]}' does not resolve to a value."
        ) from None
    except ValueError as exc:
        raise FunctionLoadError(name, f"Error indexing function 'Functions.{name}': {exc}") from None
    names = [b.name for b in bindings]
    if len(set(names)) != len(names):
        raise FunctionLoadError(name, "function.json declares the same binding name more than once")
    triggers = [b for b in bindings if b.is_trigger]
    if not triggers:
        raise FunctionLoadError(name, "No trigger binding specified. A function must have a trigger input binding.")
    if len(triggers) > 1:
        raise FunctionLoadError(
            name, "Multiple trigger bindings defined. A function can only have a single trigger binding."
        )
    script = doc.get("scriptFile") or DEFAULT_SCRIPT_FILE
    entry_point = doc.get("entryPoint") or ""
    if not isinstance(script, str) or not isinstance(entry_point, str):
        raise FunctionLoadError(name, "scriptFile and entryPoint must be strings")
    config = FunctionConfig(
        name=name,
        directory=directory,
        script_file=(directory / script).resolve(),
        entry_point=entry_point,
        bindings=bindings,
        raw_bindings=tuple(json.dumps(b) for b in raw),
    )
    if config.trigger_type == QUEUE_TRIGGER:
        config = _with_normalized_queue_name(config)
    if config.trigger_type == TIMER_TRIGGER:
        try:
            Schedule.parse(config.schedule)
        except ConfigError as exc:
            raise FunctionLoadError(name, f"Error indexing function 'Functions.{name}': {exc}") from None
    return config


def _binding(raw: Mapping[str, Any], settings: Mapping[str, str]) -> Binding:
    name, type_ = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name or not isinstance(type_, str) or not type_:
        raise ValueError("every binding needs a non-empty 'name' and 'type'")
    direction = str(raw.get("direction", "in")).lower()
    if direction not in ("in", "out", "inout"):
        raise ValueError(f"binding '{name}' has an invalid direction {raw.get('direction')!r}")
    data_type = str(raw.get("dataType", "undefined")).lower()
    if data_type not in ("undefined", "string", "binary", "stream"):
        raise ValueError(f"binding '{name}' has an invalid dataType {raw.get('dataType')!r}")
    return Binding(
        name=name,
        type=type_,
        direction="in" if direction == "in" else "out" if direction == "out" else "inout",
        data_type=data_type,
        properties={k: _resolve(v, settings) for k, v in raw.items()},
    )


def _resolve(value: Any, settings: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return resolve_setting_expressions(value, settings)
    if isinstance(value, list):
        return [_resolve(v, settings) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, settings) for k, v in value.items()}
    return value


def _with_normalized_queue_name(config: FunctionConfig) -> FunctionConfig:
    trigger = config.trigger
    queue = trigger.get("queueName")
    if not isinstance(queue, str) or not queue:
        raise FunctionLoadError(config.name, "queueTrigger binding needs a 'queueName'")
    normalized = queue.lower()  # the WebJobs queue binding lower-cases, then validates
    if not _QUEUE_NAME.fullmatch(normalized):
        raise FunctionLoadError(
            config.name,
            f"Invalid queue name: {queue}. A queue name can contain only lowercase letters, numbers and "
            "single hyphens, must begin with a letter or a number, and must be 3-63 characters long.",
        )
    properties = {k: v for k, v in trigger.properties.items() if k.lower() != "queuename"}
    properties["queueName"] = normalized
    new_trigger = Binding(trigger.name, trigger.type, trigger.direction, trigger.data_type, properties)
    bindings = tuple(new_trigger if b is trigger else b for b in config.bindings)
    return FunctionConfig(
        config.name, config.directory, config.script_file, config.entry_point, bindings, config.raw_bindings
    )


def _disabled_by_setting(name: str, settings: Mapping[str, str]) -> bool:
    for key in (f"AzureWebJobs.{name}.Disabled", f"AzureWebJobs_{name}_Disabled"):
        if settings.get(key, "").strip().lower() in ("1", "true"):
            return True
    return False


def _function_log_level(levels: Mapping[str, Any]) -> int:
    configured = levels.get("Function", levels.get("default", "Information"))
    level = _LOG_LEVELS.get(str(configured).lower())
    if level is None:
        raise ConfigError(f"host.json: unknown log level {configured!r}")
    return level


def _read_json(path: Path, function_name: str | None = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if function_name is not None:
            raise FunctionLoadError(function_name, f"cannot read {path.name}: {exc}") from None
        raise ConfigError(f"cannot read {path}: {exc}") from None
