"""Key Vault secrets, cached per instance.

One `SecretClient` per process. Each secret is read at most once per TTL; concurrent readers of a
missing or expired secret share one read (single flight). `invalidate` forces the next read after an
auth failure; `set` writes a new version (used for the rotated SAM refresh token).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from shared.clock import Clock
from shared.correlation import get_logger
from shared.dependency_errors import dependency_error
from shared.errors import DependencyMisconfigured, UpgradeError

log = get_logger(__name__)

DEFAULT_TTL_SECONDS = 10 * 60


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    version: str | None
    created_on: float | None  # when this version was written, seconds since the epoch

    def __repr__(self) -> str:  # never show the value in a log or a traceback
        return f"Secret(name={self.name!r}, version={self.version!r})"


@dataclass
class _Entry:
    secret: Secret
    fetched_at: float


class SecretStore:
    def __init__(self, client: SecretClient, clock: Clock, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl_seconds
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @property
    def client(self) -> SecretClient:
        """The vault client, for readers with their own cache (shared/auth/caller_keys.py reads key versions)."""
        return self._client

    def get(self, name: str) -> Secret:
        entry = self._fresh(name)
        if entry:
            return entry.secret
        with self._lock_for(name):
            entry = self._fresh(name)
            if entry:
                return entry.secret
            secret = self._read(name)
            self._cache[name] = _Entry(secret, self._clock.now())
            return secret

    def invalidate(self, *names: str) -> None:
        for name in names:
            self._cache.pop(name, None)

    def set(self, name: str, value: str, *, expires_in_days: int | None = None) -> Secret:
        """Write `value` as a new version of `name` and cache it."""

        expires_on = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days is not None else None
        with self._lock_for(name):
            try:
                stored = self._client.set_secret(
                    name,
                    value,
                    content_type="text/plain",
                    expires_on=expires_on,
                    tags={"writtenBy": "partner-center-upgrade-functions"},
                )
            except AzureError as error:
                raise _translate(error, name, "write") from None
            secret = _secret(name, stored)
            self._cache[name] = _Entry(secret, self._clock.now())
            return secret

    def _fresh(self, name: str) -> _Entry | None:
        entry = self._cache.get(name)
        if entry and self._clock.now() - entry.fetched_at < self._ttl:
            return entry
        return None

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _read(self, name: str) -> Secret:

        try:
            stored = self._client.get_secret(name)
        except AzureError as error:
            raise _translate(error, name, "read") from None
        if stored.value is None:
            raise DependencyMisconfigured(f"Key Vault secret '{name}' has no value")
        log.info("read Key Vault secret %s (version %s)", name, stored.properties.version)
        return _secret(name, stored)


def _secret(name: str, stored: KeyVaultSecret) -> Secret:
    created = stored.properties.created_on
    return Secret(
        name=name,
        value=stored.value or "",
        version=stored.properties.version,
        created_on=created.timestamp() if created else None,
    )


def _translate(error: AzureError, name: str, action: str) -> UpgradeError:
    if isinstance(error, ResourceNotFoundError):
        log.warning("Key Vault has no secret %s", name)
        return DependencyMisconfigured(
            f"Key Vault has no secret named '{name}'; store the SAM credentials in the vault (see README)"
        )
    return dependency_error(
        error, service="Key Vault", action=f"{action} secret '{name}'", roles="Key Vault Secrets Officer"
    )
