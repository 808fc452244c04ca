"""Correlation ids: one per request or message, on every log line and every Partner Center call.

The id must be a GUID because it is forwarded to Partner Center as `MS-CorrelationId`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

GUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_current: ContextVar[str] = ContextVar("correlation_id", default="-")


def is_guid(value: str | None) -> bool:
    """The whole string is a GUID (fullmatch: `$` would also match before a trailing newline)."""
    return bool(value) and GUID_PATTERN.fullmatch(value or "") is not None


def correlation_id_from(value: str | None) -> str:
    """The caller's id when it is a GUID, else a new one."""
    return value.strip().lower() if value and is_guid(value.strip()) else str(uuid.uuid4())


def current_correlation_id() -> str:
    return _current.get()


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[str]:
    token = _current.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _current.reset(token)


class CorrelatedLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the current correlation id and adds it as `correlationId` for telemetry."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        correlation_id = _current.get()
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "correlationId": correlation_id}
        return f"[{correlation_id}] {msg}", kwargs


def get_logger(name: str) -> CorrelatedLogger:
    return CorrelatedLogger(logging.getLogger(name), {})
