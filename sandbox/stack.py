"""The whole outside world in one object: managed identity, Key Vault, Entra ID and Partner Center.

    with Sandbox(tmp_path) as sandbox:
        seed = sandbox.seed_sam_credentials()
        sandbox.add_demo_customers()
        fleet = sandbox.add_fleet(300, seed=7)   # generated customers; fleet.counts() per kind
        env = sandbox.environment()   # what the app needs to reach them the way Azure would

The app must run with `environment()` applied and with AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and
AZURE_TENANT_ID unset, so that DefaultAzureCredential picks the managed-identity stand-in. `clock` drives
Entra (token and refresh-token lifetimes), Key Vault (version timestamps) and Partner Center (progressions);
the managed-identity stand-in always runs on real time.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from sandbox.customers import DEMO_CUSTOMERS
from sandbox.entra import EntraStandIn
from sandbox.entra_api import ALL_ROLES
from sandbox.fleet import Fleet, Mix, generate_fleet
from sandbox.key_vault import KeyVaultStandIn
from sandbox.managed_identity import ManagedIdentityStandIn
from sandbox.partner_center import PartnerCenterStandIn
from sandbox.server import Clock, StandIn
from sandbox.tls import LocalCA
from sandbox.tokens import DEFAULT_TENANT_ID
from shared.auth.caller_keys import new_key

APP_ID_SECRET = "partner-center-app-id"
APP_SECRET_SECRET = "partner-center-app-secret"
REFRESH_TOKEN_SECRET = "partner-center-refresh-token"
CALLBACK_SIGNING_KEY_SECRET = "callback-signing-key"
STATUS_LINK_KEY_SECRET = "status-link-signing-key"
CALLER_KEY_PREFIX = "caller-key-"


@dataclass(frozen=True)
class SamSeed:
    """The SAM credentials written to the Key Vault stand-in, for assertions."""

    app_id: str
    app_secret: str
    refresh_token: str
    callback_signing_key: str
    refresh_token_version: str
    status_link_key: str


class Sandbox:
    def __init__(
        self,
        workdir: Path,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        clock: Clock = time.time,
        public_roots: bool = True,
    ) -> None:
        self.workdir = workdir
        self.tenant_id = tenant_id
        self.clock = clock
        self.ca = LocalCA(workdir / "tls", public_roots=public_roots)  # False: a CA-only bundle (tests)
        # Real time, whatever `clock` says: managed-identity tokens are cached by azure-identity and checked by
        # Azurite, and both only know real time. Everything else follows `clock`.
        self.identity = ManagedIdentityStandIn(tenant_id=tenant_id)
        self.key_vault = KeyVaultStandIn(ca=self.ca, identity=self.identity, clock=clock)
        self.entra = EntraStandIn(ca=self.ca, tenant_id=tenant_id, clock=clock)
        self.partner_center = PartnerCenterStandIn(ca=self.ca, entra=self.entra, clock=clock)
        self.caller_keys: list[str] = []  # every caller key seeded, for leak checks

    @property
    def stand_ins(self) -> tuple[StandIn, ...]:
        return (self.identity, self.key_vault, self.entra, self.partner_center)

    def start(self) -> Self:
        started: list[StandIn] = []
        try:
            for stand_in in self.stand_ins:
                stand_in.start()
                started.append(stand_in)
        except BaseException:
            for stand_in in reversed(started):
                stand_in.stop()
            raise
        return self

    def stop(self) -> None:
        for stand_in in reversed(self.stand_ins):
            stand_in.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Reset every stand-in's log, faults, latency and counters (stored state stays)."""
        for stand_in in self.stand_ins:
            stand_in.reset()

    def seed_sam_credentials(
        self, *, refresh_token_age_hours: float = 0.0, mfa: bool = True, callback_signing_key: str | None = None
    ) -> SamSeed:
        """Register a SAM app in Entra, issue its refresh token (aged as asked, in Entra and in Key Vault) and
        store app id, app secret, refresh token, a callback signing key and a follow-link signing key (base64url of
        32 random bytes, as the consent tool creates it) under the default secret names.
        `mfa=False`: the consent behind the refresh token had no MFA, so its access tokens carry `amr: ["pwd"]`
        and Partner Center refuses them (401, code 900421). `callback_signing_key`: that value instead of a random
        one (so a receiver started by hand can verify the local app's callbacks)."""
        app_id = str(uuid.uuid4())
        app_secret = secrets.token_urlsafe(30)
        issued_at = self.clock() - refresh_token_age_hours * 3600
        self.entra.register_app(app_id, app_secret)
        refresh_token = self.entra.issue_refresh_token(app_id, issued_at=issued_at, mfa=mfa)
        signing_key = callback_signing_key or secrets.token_hex(32)
        self.key_vault.seed(APP_ID_SECRET, app_id)
        self.key_vault.seed(APP_SECRET_SECRET, app_secret)
        version = self.key_vault.seed(REFRESH_TOKEN_SECRET, refresh_token, created=issued_at)
        self.key_vault.seed(CALLBACK_SIGNING_KEY_SECRET, signing_key)
        link_key = secrets.token_urlsafe(32)
        self.key_vault.seed(STATUS_LINK_KEY_SECRET, link_key)
        return SamSeed(app_id, app_secret, refresh_token, signing_key, version, link_key)

    def seed_caller_key(self, name: str, roles: tuple[str, ...] = ALL_ROLES, *, prefix: str = CALLER_KEY_PREFIX) -> str:
        """A named caller key with `roles`, stored as the operator tool stores it (a new version of secret
        `{prefix}{name}`: the previous version stays valid, as after a rotation); returns the key, which only the
        caller holds. Every key seeded here is in `caller_keys` for the tests' leak check."""
        key, record = new_key(name, set(roles))
        self.key_vault.seed(prefix + name, record.to_json())
        self.caller_keys.append(key)
        return key

    def add_demo_customers(self) -> None:
        for customer in DEMO_CUSTOMERS:
            self.partner_center.add_customer(dataclasses.replace(customer))

    def add_fleet(self, count: int, *, seed: int = 0, mix: Mix | None = None, complete_after: float = 5.0) -> Fleet:
        """Add `count` generated customers to Partner Center (see `sandbox.fleet`: the same arguments always give
        the same customers); `fleet.counts()` says how many of each kind."""
        fleet = generate_fleet(count, seed=seed, mix=mix, complete_after=complete_after)
        for customer in fleet.customers:
            self.partner_center.add_customer(customer)
        return fleet

    def environment(self) -> dict[str, str]:
        bundle = str(self.ca.bundle_path)
        return {
            "KEY_VAULT_URL": self.key_vault.url,
            "PARTNER_TENANT_ID": self.tenant_id,
            "PARTNER_CENTER_BASE_URL": self.partner_center.url,
            "AZURE_AUTHORITY_HOST": self.entra.url,
            "CALLER_API_AUDIENCE": self.entra.api.audience,  # the app's API registration (its client id)
            **self.identity.environment(),
            "REQUESTS_CA_BUNDLE": bundle,
            "SSL_CERT_FILE": bundle,
            "CURL_CA_BUNDLE": bundle,
        }
