"""Function keys and ``authLevel``, checked the way the Functions host checks them.

A keys file (``--keys FILE``) looks like::

    {"master": "…",                                      # optional: the admin (master) key
     "host": {"default": "…"},                           # host keys: every function-level route
     "functions": {"CreateUpgrade": {"default": "…"}}}   # per-function keys: that function only

A key arrives in the ``x-functions-key`` header or the ``code`` query parameter. ``anonymous`` routes ask for
nothing; ``function`` routes take a host key or that function's key; ``admin`` routes (and the admin API) take
the master key — when the file names none, a host key is the master key, as Core Tools' single default host key
is. Without keys (``HostKeys.none()``) nothing is enforced, as with Core Tools locally.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devhost.errors import ConfigError

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


def presented_key(headers: Iterable[tuple[str, str]], target: str) -> str | None:
    """The key a request carries: ``x-functions-key`` header first, then ``?code=``."""
    header = next((v for k, v in headers if k.lower() == KEY_HEADER), None)
    if header:
        return header
    return next((v for k, v in parse_qsl(urlsplit(target).query) if k == KEY_QUERY and v), None)


@dataclass(frozen=True)
class HostKeys:
    master: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    functions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enforced: bool = True

    @classmethod
    def none(cls) -> HostKeys:
        return cls(enforced=False)

    @classmethod
    def from_document(cls, doc: Any, source: str = "keys") -> HostKeys:
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        host = _key_values(doc.get("host"), f"{source}: host")
        functions = doc.get("functions") or {}
        if not isinstance(functions, dict):
            raise ConfigError(f"{source}: 'functions' must map function names to {{name: key}} objects")
        per_function = {str(n): _key_values(k, f"{source}: functions.{n}") for n, k in functions.items()}
        master = doc.get("master")
        if master is not None and (not isinstance(master, str) or not master):
            raise ConfigError(f"{source}: 'master' must be a non-empty string")
        if not (host or master or any(per_function.values())):
            raise ConfigError(f"{source}: no keys in it")
        return cls(master=(master,) if master else host, host=host, functions=per_function)

    @classmethod
    def load(cls, path: Path) -> HostKeys:
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the keys file {path}: {exc}") from None
        return cls.from_document(doc, str(path))

    def allows(self, auth_level: str, function: str | None, key: str | None) -> bool:
        """Whether a request with ``key`` may call a route of ``auth_level`` (of ``function``)."""
        level = auth_level.lower()
        if not self.enforced or level == "anonymous":
            return True
        if key is None:
            return False
        if level == "function":
            candidates = (*self.host, *self.functions.get(function or "", ()), *self.master)
        else:  # admin (and the host's internal levels): the master key only
            candidates = self.master
        # compare with every candidate (no early exit): the time taken does not tell which one matched
        matches = [hmac.compare_digest(key.encode(), candidate.encode()) for candidate in candidates]
        return any(matches)

    def any_host_key(self) -> str | None:
        """A key that opens every function route (for tools such as `make demo`)."""
        return next(iter((*self.host, *self.master)), None)


def _key_values(section: Any, where: str) -> tuple[str, ...]:
    if section is None:
        return ()
    if not isinstance(section, dict) or not all(isinstance(v, str) and v for v in section.values()):
        raise ConfigError(f"{where} must be an object of {{name: non-empty key}}")
    return tuple(section.values())
