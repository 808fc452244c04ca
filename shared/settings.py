"""App settings: read from the environment once, validated, typed.

The names and defaults are the contract in docs/design.md. `SETTINGS` is the declarative list that
`Settings.from_env` reads and that the infra tests compare with what the Bicep sets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.callback_urls import parse_allowed_host
from shared.correlation import GUID_PATTERN
from shared.whole_number import whole_number


class ConfigurationError(Exception):
    """One or more app settings are missing or invalid. The message names settings, never values."""


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: str | None
    meaning: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("KEY_VAULT_URL", None, "vault holding the SAM credentials (required)"),
    SettingSpec("PARTNER_TENANT_ID", None, "the partner's Entra tenant, GUID or domain (required)"),
    SettingSpec("PARTNER_CENTER_BASE_URL", "https://api.partnercenter.microsoft.com", "Partner Center REST root"),
    SettingSpec("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com", "Entra authority host"),
    SettingSpec("PARTNER_CENTER_APP_ID_SECRET", "partner-center-app-id", "secret name: SAM application id"),
    SettingSpec("PARTNER_CENTER_APP_SECRET_SECRET", "partner-center-app-secret", "secret name: SAM app secret"),
    SettingSpec(
        "PARTNER_CENTER_REFRESH_TOKEN_SECRET", "partner-center-refresh-token", "secret name: SAM refresh token"
    ),
    SettingSpec("CALLBACK_SIGNING_KEY_SECRET", "callback-signing-key", "secret name: HMAC key for callbacks"),
    SettingSpec("AzureWebJobsStorage", None, "storage connection string, or the identity-based __ settings"),
    SettingSpec("UPGRADE_STATUS_QUEUE", "upgrade-status", "status-check queue"),
    SettingSpec("UPGRADES_TABLE", "upgrades", "status records and idempotency keys"),
    SettingSpec("PUBLIC_BASE_URL", None, "external base URL for Location (API Management / Front Door)"),
    SettingSpec(
        "CALLBACK_ALLOWED_HOSTS",
        None,
        "comma-separated callback hosts (exact or *.suffix; :port if not 443); unset = off",
    ),
    SettingSpec("CHECK_ELIGIBILITY", "true", "run the eligibility check before creating"),
    SettingSpec("STATUS_FIRST_CHECK_SECONDS", "60", "delay before the first status check"),
    SettingSpec("STATUS_MAX_INTERVAL_SECONDS", "900", "longest interval between status checks"),
    SettingSpec("STATUS_MAX_TRACKING_HOURS", "72", "tracking window before an upgrade is TimedOut"),
    SettingSpec("PARTNER_CENTER_TIMEOUT_SECONDS", "30", "read timeout of one Partner Center attempt"),
    SettingSpec("STATUS_LINK_KEY_SECRET", "status-link-signing-key", "secret name: HMAC key for follow links"),
    SettingSpec("UPGRADE_BATCH_QUEUE", "upgrade-batch", "batch work queue"),
    SettingSpec("PARTNER_CENTER_BATCH_CALLS_PER_MINUTE", "300", "cap on batch calls to Partner Center, all instances"),
    SettingSpec("CONSENT_CHECK_SCHEDULE", "0 30 3 * * *", "NCRONTAB (UTC) of the consent keep-alive"),
    SettingSpec(
        "CALLER_TENANT_ID", None, "tenant whose Entra tokens callers present (GUID); unset = the partner tenant"
    ),
    SettingSpec("CALLER_API_AUDIENCE", None, "aud of callers' tokens: the API registration's client id (required)"),
    SettingSpec("CALLER_KEY_SECRET_PREFIX", "caller-key-", "Key Vault secret name prefix of named caller keys"),
    SettingSpec("AUDIT_RETENTION_DAYS", "400", "how long audit entries are kept"),
    SettingSpec(
        "IDEMPOTENCY_CLAIM_LEASE_SECONDS", "120", "an Idempotency-Key claim left by a dead instance is taken over after"
    ),
)

# The identity-based form of AzureWebJobsStorage (the same settings the Functions host reads).
STORAGE_IDENTITY_SUFFIXES = ("queueServiceUri", "tableServiceUri", "accountName", "credential", "clientId")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_KEY_PREFIX = re.compile(r"^[0-9A-Za-z-]{1,60}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_NCRONTAB = re.compile(r"^\S+( \S+){5}$")  # six fields: second minute hour day month day-of-week


@dataclass(frozen=True)
class StorageSettings:
    """Where the app's own queue and table clients connect: a connection string or identity-based URIs."""

    connection_string: str | None = field(default=None, repr=False)  # may hold an account key
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None  # "managedidentity" selects ManagedIdentityCredential, else DefaultAzureCredential
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    key_vault_url: str
    partner_tenant_id: str
    partner_center_base_url: str
    authority_host: str
    app_id_secret: str
    app_secret_secret: str
    refresh_token_secret: str
    callback_signing_key_secret: str
    storage: StorageSettings
    status_queue: str
    upgrades_table: str
    public_base_url: str | None
    callback_allowed_hosts: tuple[str, ...]
    check_eligibility: bool
    first_check_seconds: int
    max_interval_seconds: int
    max_tracking_hours: float
    partner_center_timeout_seconds: float
    status_link_key_secret: str
    batch_queue: str
    batch_calls_per_minute: int
    consent_check_schedule: str
    idempotency_claim_lease_seconds: int
    caller_tenant_id: str
    caller_api_audience: str
    caller_key_secret_prefix: str
    audit_retention_days: int

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.callback_allowed_hosts)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        reader = _Reader(os.environ if env is None else env)
        settings = cls(
            key_vault_url=reader.url("KEY_VAULT_URL"),
            partner_tenant_id=reader.tenant("PARTNER_TENANT_ID"),
            partner_center_base_url=reader.url("PARTNER_CENTER_BASE_URL"),
            authority_host=reader.url("AZURE_AUTHORITY_HOST"),
            app_id_secret=reader.secret_name("PARTNER_CENTER_APP_ID_SECRET"),
            app_secret_secret=reader.secret_name("PARTNER_CENTER_APP_SECRET_SECRET"),
            refresh_token_secret=reader.secret_name("PARTNER_CENTER_REFRESH_TOKEN_SECRET"),
            callback_signing_key_secret=reader.secret_name("CALLBACK_SIGNING_KEY_SECRET"),
            storage=reader.storage(),
            status_queue=reader.pattern("UPGRADE_STATUS_QUEUE", _QUEUE_NAME, "a valid queue name"),
            upgrades_table=reader.pattern("UPGRADES_TABLE", _TABLE_NAME, "a valid table name"),
            public_base_url=reader.optional_url("PUBLIC_BASE_URL"),
            callback_allowed_hosts=reader.hosts("CALLBACK_ALLOWED_HOSTS"),
            check_eligibility=reader.boolean("CHECK_ELIGIBILITY"),
            first_check_seconds=reader.integer("STATUS_FIRST_CHECK_SECONDS", 1, 86_400),
            max_interval_seconds=reader.integer("STATUS_MAX_INTERVAL_SECONDS", 1, 86_400),
            max_tracking_hours=reader.number("STATUS_MAX_TRACKING_HOURS", 0.001, 24 * 90),
            partner_center_timeout_seconds=reader.number("PARTNER_CENTER_TIMEOUT_SECONDS", 0.1, 120),
            status_link_key_secret=reader.secret_name("STATUS_LINK_KEY_SECRET"),
            batch_queue=reader.pattern("UPGRADE_BATCH_QUEUE", _QUEUE_NAME, "a valid queue name"),
            batch_calls_per_minute=reader.integer("PARTNER_CENTER_BATCH_CALLS_PER_MINUTE", 1, 60_000),
            consent_check_schedule=reader.pattern(
                "CONSENT_CHECK_SCHEDULE", _NCRONTAB, "an NCRONTAB expression with six fields"
            ),
            idempotency_claim_lease_seconds=reader.integer("IDEMPOTENCY_CLAIM_LEASE_SECONDS", 1, 3600),
            caller_tenant_id=reader.caller_tenant(),
            caller_api_audience=reader.required("CALLER_API_AUDIENCE"),
            caller_key_secret_prefix=reader.pattern(
                "CALLER_KEY_SECRET_PREFIX", _KEY_PREFIX, "letters, digits, hyphens"
            ),
            audit_retention_days=reader.integer("AUDIT_RETENTION_DAYS", 1, 3650),
        )
        if settings.first_check_seconds > settings.max_interval_seconds:
            reader.problems.append("STATUS_FIRST_CHECK_SECONDS must not exceed STATUS_MAX_INTERVAL_SECONDS")
        if reader.problems:
            raise ConfigurationError("invalid app settings: " + "; ".join(reader.problems))
        return settings


_DEFAULTS = {spec.name: spec.default for spec in SETTINGS}


class _Reader:
    """Collects every problem instead of stopping at the first, so one deploy shows them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or _DEFAULTS.get(name)

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required")
            return ""
        return value

    def url(self, name: str) -> str:
        value = self.required(name)
        if value and not _is_https_url(value):
            self.problems.append(f"{name} must be an absolute https URL")
        return value.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            self.problems.append(f"{name} must be an absolute http(s) URL without query")
        return value.rstrip("/")

    def tenant(self, name: str) -> str:
        value = self.required(name)
        if value and not (GUID_PATTERN.fullmatch(value) or _DOMAIN.fullmatch(value)):
            self.problems.append(f"{name} must be a tenant GUID or domain name")
        return value

    def caller_tenant(self) -> str:
        """CALLER_TENANT_ID, else PARTNER_TENANT_ID (a GUID or a domain: the token check reads the tenant's GUID
        from its OpenID metadata)."""
        if self.raw("CALLER_TENANT_ID") is None:
            return (self.raw("PARTNER_TENANT_ID") or "").lower()
        return self.tenant("CALLER_TENANT_ID").lower()

    def secret_name(self, name: str) -> str:
        return self.pattern(name, _SECRET_NAME, "a Key Vault secret name (letters, digits, hyphens)")

    def pattern(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.required(name)
        if value and not pattern.fullmatch(value):
            self.problems.append(f"{name} must be {what}")
        return value

    def boolean(self, name: str) -> bool:
        value = (self.raw(name) or "").lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{name} must be true or false")
        return value in ("true", "1", "yes")

    def number(self, name: str, low: float, high: float) -> float:
        value = self.required(name)
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not low <= number <= high:
            self.problems.append(f"{name} must be a number from {low:g} to {high:g}")
            return low
        return number

    def integer(self, name: str, low: int, high: int) -> int:
        value = self.required(name)
        number = whole_number(value)
        if number is None or not low <= number <= high:
            self.problems.append(f"{name} must be a whole number from {low} to {high}")
            return low
        return number

    def hosts(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
        if not hosts or not all(parse_allowed_host(h) for h in hosts):
            self.problems.append(
                f"{name} must be comma-separated host names (exact, or *.suffix), each optionally with :port"
            )
        return hosts

    def storage(self) -> StorageSettings:
        connection_string = self.env.get("AzureWebJobsStorage", "").strip()
        if connection_string:
            return StorageSettings(connection_string=connection_string)
        identity = {s: self.env.get(f"AzureWebJobsStorage__{s}", "").strip() or None for s in STORAGE_IDENTITY_SUFFIXES}
        queue_uri, table_uri = identity["queueServiceUri"], identity["tableServiceUri"]
        if identity["accountName"]:
            queue_uri = queue_uri or f"https://{identity['accountName']}.queue.core.windows.net"
            table_uri = table_uri or f"https://{identity['accountName']}.table.core.windows.net"
        if not (queue_uri and table_uri):
            self.problems.append(
                "AzureWebJobsStorage is required: a connection string, or AzureWebJobsStorage__queueServiceUri "
                "and AzureWebJobsStorage__tableServiceUri (or AzureWebJobsStorage__accountName)"
            )
        return StorageSettings(
            queue_service_uri=queue_uri,
            table_service_uri=table_uri,
            credential=identity["credential"],
            client_id=identity["clientId"],
        )


def _is_https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not parts.query and not parts.fragment
