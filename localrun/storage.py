"""The queue-client factory this app gives devhost: its storage settings, resolved by the app's own code.

``AzureWebJobsStorage`` is read by ``shared.settings`` (connection string, or identity-based
``AzureWebJobsStorage__queueServiceUri`` / ``__accountName`` with ``__credential`` / ``__clientId``) and the
credential is chosen by ``shared.storage``, exactly as the app's own queue and table clients do, so the host's
polling and the app's sends always reach the same account the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import TokenCredential
from azure.storage.queue import QueueServiceClient

from devhost.errors import ConfigError
from shared.settings import ConfigurationError, Settings
from shared.storage.clients import storage_credential

STORAGE_CONNECTION = "AzureWebJobsStorage"
# Keep the host's own storage calls snappy and quiet: a local emulator either answers or is not running.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "connection_timeout": 5,
    "read_timeout": 30,
    "http_logging_level": logging.DEBUG,
}


def app_queue_service(connection: str, settings: Mapping[str, str]) -> QueueServiceClient:
    """A ``devhost.QueueServiceFactory``: this app's queue triggers all use ``AzureWebJobsStorage``."""
    if connection != STORAGE_CONNECTION:
        raise ConfigError(f"connection '{connection}': this app's queue triggers use {STORAGE_CONNECTION}")
    try:
        storage = Settings.from_env(settings).storage
    except ConfigurationError as exc:
        raise ConfigError(f"{exc} (set them in the environment or in local.settings.json)") from None
    if storage.connection_string:
        try:
            return QueueServiceClient.from_connection_string(storage.connection_string, **CLIENT_OPTIONS)
        except ValueError as exc:
            raise ConfigError(f"{STORAGE_CONNECTION} is not a valid storage connection string: {exc}") from None
    assert storage.queue_service_uri  # guaranteed by Settings
    credential = storage_credential(storage, _default_credential)
    return QueueServiceClient(storage.queue_service_uri, credential=credential, **CLIENT_OPTIONS)


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for identity-based storage

    return DefaultAzureCredential()
