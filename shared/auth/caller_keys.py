"""Named caller keys: `<name>.<secret>`, for senders that can only send a static secret (CRM webhooks).

Key Vault secret `{CALLER_KEY_SECRET_PREFIX}{name}` holds a JSON record per version: the roles and a salted
HMAC-SHA256 of the secret, never the key. The secret is 32 random bytes (256 bits), so nobody can guess it from
the hash however fast the hash is; slow password hashes (scrypt, PBKDF2) protect low-entropy passwords, and here
they would only add milliseconds to every request. The per-version salt keeps equal secrets from hashing alike.

Rotation: the current and the previous enabled version are valid (a new version made by the operator tool keeps
the old key working until the next rotation). Revocation: deleting the secret; an instance notices within
`CACHE_SECONDS` (records, including "no such key", are cached that long per instance).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.clock import Clock
from shared.concurrency import submit
from shared.correlation import get_logger
from shared.dependency_errors import dependency_error
from shared.errors import Unauthenticated, UpgradeError

log = get_logger(__name__)

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
CACHE_SECONDS = 60.0
REFRESH_AFTER_SECONDS = 30.0  # a record older than this is served and read again in the background
MAX_CACHED_NAMES = 1000
VALID_VERSIONS = 2  # the current and the previous one: a rotation keeps the old key working until the next


@dataclass(frozen=True)
class KeyRecord:
    """One version of a key: its roles and the salted hash of its secret."""

    name: str
    roles: frozenset[str]
    salt: bytes
    digest: bytes
    created_at: str

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, secret), self.digest)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "name": self.name,
                "roles": sorted(self.roles),
                "algorithm": "HMAC-SHA256",
                "salt": _b64(self.salt),
                "hash": _b64(self.digest),
                "createdAt": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> KeyRecord:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            roles=frozenset(str(r) for r in data["roles"]),
            salt=_unb64(data["salt"]),
            digest=_unb64(data["hash"]),
            created_at=str(data.get("createdAt", "")),
        )


def new_key(name: str, roles: frozenset[str] | set[str]) -> tuple[str, KeyRecord]:
    """A new key `<name>.<secret>` (to show once) and the record to store in Key Vault."""
    if not NAME.fullmatch(name):
        raise ValueError("a key name is 1-40 lower-case letters, digits and hyphens")
    secret, salt = secrets.token_urlsafe(32), secrets.token_bytes(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{name}.{secret}", KeyRecord(name, frozenset(roles), salt, _digest(salt, secret), created)


def split_key(key: str) -> tuple[str, str]:
    """(name, secret) of a presented key, or Unauthenticated when it is not shaped like one."""
    name, _, secret = key.strip().partition(".")
    if not NAME.fullmatch(name) or not SECRET.fullmatch(secret):
        raise Unauthenticated("the caller key is malformed")
    return name, secret


class CallerKeys:
    """Checks presented keys against Key Vault's current and previous version, cached per instance."""

    def __init__(self, client: SecretClient, prefix: str, clock: Clock) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[KeyRecord, ...]]] = {}
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._refreshing: set[str] = set()

    def check(self, key: str) -> KeyRecord:
        name, secret = split_key(key)
        matched = [record for record in self._records(name) if record.matches(secret)]  # every version, always
        if not matched:
            raise Unauthenticated(f"caller key {name} is unknown, revoked or wrong")
        return matched[0]

    def _records(self, name: str) -> tuple[KeyRecord, ...]:
        """A name's records: from the cache while younger than `CACHE_SECONDS` (read again in the background once
        older than `REFRESH_AFTER_SECONDS`, so a caller with steady traffic never waits on Key Vault and a
        revocation still takes effect within `CACHE_SECONDS`); else read now, single flight per name."""
        cached = self._cache.get(name)
        if cached and self._clock.now() - cached[0] < CACHE_SECONDS:
            if self._clock.now() - cached[0] >= REFRESH_AFTER_SECONDS:
                self._refresh_in_background(name)
            return cached[1]
        with self._lock:
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:  # single flight per name
            cached = self._cache.get(name)
            if cached and self._clock.now() - cached[0] < CACHE_SECONDS:
                return cached[1]
            records = self._read(name)
            if len(self._cache) >= MAX_CACHED_NAMES:
                self._cache.clear()
            self._cache[name] = (self._clock.now(), records)
            return records

    def _refresh_in_background(self, name: str) -> None:
        with self._lock:
            if name in self._refreshing:
                return
            self._refreshing.add(name)

        def refresh() -> None:
            try:
                self._cache[name] = (self._clock.now(), self._read(name))
            except UpgradeError as error:  # the cached records stay until they expire; the next read tries again
                log.warning("caller key %s could not be refreshed: %s", name, error.detail)
            finally:
                with self._lock:
                    self._refreshing.discard(name)

        submit(refresh)

    def _read(self, name: str) -> tuple[KeyRecord, ...]:
        secret_name = self._prefix + name
        try:
            versions = [v for v in self._client.list_properties_of_secret_versions(secret_name) if v.enabled]
            versions.sort(key=lambda v: v.created_on or datetime.min.replace(tzinfo=UTC))
            texts = [self._client.get_secret(secret_name, v.version).value for v in versions[-VALID_VERSIONS:]]
        except ResourceNotFoundError:
            return ()
        except AzureError as error:
            raise dependency_error(
                error, service="Key Vault", action=f"read caller key {secret_name}", roles="Key Vault Secrets User"
            ) from None
        parsed = (_parsed(name, text) for text in texts if text)
        return tuple(record for record in parsed if record is not None)


def _parsed(name: str, text: str) -> KeyRecord | None:
    try:
        record = KeyRecord.from_json(text)
    except (ValueError, KeyError, TypeError):
        log.warning("caller key %s: a version in Key Vault is not a caller-key record; ignored", name)
        return None
    return record if record.name == name else None


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.digest(salt, secret.encode(), hashlib.sha256)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def record_fields(record: KeyRecord) -> dict[str, Any]:
    """What an operator may see of a key: never its hash or salt."""
    return {"name": record.name, "roles": sorted(record.roles), "createdAt": record.created_at}
