"""The app's own Azure Storage clients: one table and one queue, from `AzureWebJobsStorage`.

Both forms the Functions host accepts work: a connection string, or identity-based
`AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` with `__credential` / `__clientId`.
A missing table or queue is created on first use (locally on Azurite; in Azure the infra creates them).
Retries are short: these calls sit on the HTTP path, where a quick 503 + Retry-After beats a long wait.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    LinearRetry,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.correlation import get_logger
from shared.dependency_errors import dependency_error
from shared.errors import UpgradeError
from shared.outbound_http import sdk_transport
from shared.settings import StorageSettings

log = get_logger(__name__)

POOL_SIZE = 32  # kept connections per client; the SDK's default (10) reconnects when more requests run at once


def storage_credential(storage: StorageSettings, default: Callable[[], TokenCredential]) -> TokenCredential:
    """The credential for identity-based storage, chosen as the Functions host chooses it."""
    if (storage.credential or "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=storage.client_id, transport=sdk_transport(POOL_SIZE))
    return default()


def table_client(storage: StorageSettings, table: str, credential: Callable[[], TokenCredential]) -> TableClient:
    options: dict[str, Any] = {
        "retry_total": 2,
        "retry_backoff_factor": 0.25,
        "retry_backoff_max": 1,
        "transport": sdk_transport(POOL_SIZE),  # a create makes up to three storage calls at once
    }
    if storage.connection_string:
        return TableClient.from_connection_string(storage.connection_string, table, **options)
    assert storage.table_service_uri  # guaranteed by Settings
    return TableClient(storage.table_service_uri, table, credential=storage_credential(storage, credential), **options)


def queue_client(
    storage: StorageSettings, queue: str, credential: Callable[[], TokenCredential], *, binary: bool = False
) -> QueueClient:
    """Messages are Base64 text, the Functions queue trigger's default encoding; a `binary` client sends and
    reads bytes (Base64 of them on the wire), for copies of messages that need not be UTF-8."""
    options: dict[str, Any] = {
        "message_encode_policy": BinaryBase64EncodePolicy() if binary else TextBase64EncodePolicy(),
        "message_decode_policy": BinaryBase64DecodePolicy() if binary else TextBase64DecodePolicy(),
        "retry_policy": LinearRetry(backoff=0.5, random_jitter_range=0.2, retry_total=2),  # type: ignore[arg-type]
        "transport": sdk_transport(POOL_SIZE),  # a create makes up to three storage calls at once
    }
    if storage.connection_string:
        return QueueClient.from_connection_string(storage.connection_string, queue, **options)
    assert storage.queue_service_uri  # guaranteed by Settings
    return QueueClient(storage.queue_service_uri, queue, credential=storage_credential(storage, credential), **options)


class EnsuredResource:
    """Runs storage operations, creating the table/queue once if it does not exist yet."""

    def __init__(self, kind: str, name: str, create: Callable[[], object]) -> None:
        self._kind = kind
        self._name = name
        self._create = create
        self._lock = threading.Lock()

    def run[T](self, action: str, operation: Callable[[], T]) -> T:
        try:
            try:
                return operation()
            except ResourceNotFoundError as error:
                if not _missing_container(error):
                    raise
                with self._lock:
                    log.info("creating %s %s", self._kind, self._name)
                    with contextlib.suppress(ResourceExistsError):
                        self._create()
                return operation()
        except UpgradeError:
            raise
        except AzureError as error:
            raise dependency_error(
                error,
                service="Azure Storage",
                action=f"{action} ({self._kind} {self._name})",
                roles="Storage Queue Data Contributor and Storage Table Data Contributor",
            ) from None


def error_code(error: Exception) -> str:
    """The storage error code (`TableNotFound`, `ResourceNotFound`, ...) from the response header.

    The SDKs' `error_code` attribute is an enum on some operations and missing on others.
    """
    response = getattr(error, "response", None)
    code = response.headers.get("x-ms-error-code") if response is not None else None
    if not code:
        raw = getattr(error, "error_code", None)
        code = getattr(raw, "value", raw)
    return str(code or "")


def _missing_container(error: Exception) -> bool:
    return error_code(error) in ("TableNotFound", "QueueNotFound")
