"""Queue service clients for a binding's ``connection`` setting, resolved like the Functions host does.

``connection`` names a setting prefix (empty = ``AzureWebJobsStorage``):
* ``<connection>`` (or ``AzureWebJobs<connection>``) holds a connection string, or
* identity-based: ``<connection>__queueServiceUri`` (or ``<connection>__accountName``) plus optional
  ``<connection>__credential`` (``managedidentity``) and ``<connection>__clientId``, via azure-identity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from azure.storage.queue import QueueServiceClient

from devhost.config import DEFAULT_STORAGE_CONNECTION
from devhost.errors import ConfigError

# Keep the host's own storage calls snappy and quiet: a local emulator either answers or is not running.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "connection_timeout": 5,
    "read_timeout": 30,
    "http_logging_level": logging.DEBUG,
}


def queue_service_client(connection: str, settings: Mapping[str, str]) -> QueueServiceClient:
    name = connection or DEFAULT_STORAGE_CONNECTION
    connection_string = settings.get(name) or settings.get(f"AzureWebJobs{name}")
    if connection_string:
        try:
            return QueueServiceClient.from_connection_string(connection_string, **CLIENT_OPTIONS)
        except ValueError as exc:
            raise ConfigError(f"setting '{name}' is not a valid storage connection string: {exc}") from None
    service_uri = settings.get(f"{name}__queueServiceUri")
    account = settings.get(f"{name}__accountName")
    if not service_uri and account:
        service_uri = f"https://{account}.queue.core.windows.net"
    if not service_uri:
        raise ConfigError(
            f"Storage account connection string '{name}' does not exist. Make sure that it is a defined App Setting "
            f"(a connection string, or identity-based '{name}__queueServiceUri')."
        )
    return QueueServiceClient(service_uri, credential=_credential(name, settings), **CLIENT_OPTIONS)


def _credential(name: str, settings: Mapping[str, str]) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: PLC0415 - only if used

    client_id = settings.get(f"{name}__clientId") or None
    kind = settings.get(f"{name}__credential", "").strip().lower()
    if kind == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id)
    if kind:
        raise ConfigError(f"setting '{name}__credential' must be 'managedidentity' (got {kind!r})")
    return DefaultAzureCredential(managed_identity_client_id=client_id)
