"""Follow links: the `Location` of every 202, which a poller can follow without a function key.

Power Automate's HTTP action follows `202` + `Location` but does not resend `x-functions-key`, so `Location`
points at the anonymous follow route and carries its own proof (docs/design.md, "Follow links"):
`{base}/api/follow/upgrades/{upgradeId}?customerId=…&expires=…&sig=…` (or `…/batches/{batchId}`, and the
progress page's CSV download `…/batches/{batchId}/customers`, each signed over its own path), where `expires` is
Unix seconds and `sig` the unpadded base64url HMAC-SHA256 of `"{path}\\n{customerId}\\n{expires}"` (ids
lower-case, `customerId` empty for batches), keyed by the UTF-8 value of the Key Vault secret
`STATUS_LINK_KEY_SECRET`. A link lives `STATUS_MAX_TRACKING_HOURS` + 24 hours.

If the key cannot be read, a 202 still goes out (an accepted upgrade is never lost) with the keyed status URL as
its `Location`; one ERROR tells the operator to run the consent tool, which creates the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from shared.batches.resource import batch_status_uri
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import DependencyMisconfigured, InvalidFollowLink, UpgradeError
from shared.settings import Settings
from shared.upgrades.resource import status_uri
from shared.whole_number import whole_number

if TYPE_CHECKING:  # the Key Vault SDK is imported when services() builds the store, not at module import
    from shared.key_vault import SecretStore
    from shared.services import Services

log = get_logger(__name__)

GRACE_HOURS = 24  # a link outlives the longest tracking by a day, so the final 200 can still be fetched
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded base64url

FOLLOW_RESOURCES = ("upgrades", "batches")  # what {resource} of the follow route may be; else 401
FOLLOW_PARTS = {"upgrades": ("",), "batches": ("", "customers")}  # what {part?} may be after {id}; else 401


def upgrade_path(upgrade_id: str) -> str:
    return f"/api/follow/upgrades/{upgrade_id.lower()}"


def batch_path(batch_id: str) -> str:
    return f"/api/follow/batches/{batch_id.lower()}"


def batch_customers_path(batch_id: str) -> str:
    """The follow path of a batch's CSV, signed over its own path: a batch link does not open it, nor it the batch."""
    return f"{batch_path(batch_id)}/customers"


def signature(key: bytes, path: str, customer_id: str, expires: int) -> str:
    message = f"{path}\n{customer_id.lower()}\n{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_url(key: bytes, base_url: str, path: str, customer_id: str, expires: int) -> str:
    query = {"customerId": customer_id.lower()} if customer_id else {}
    query |= {"expires": str(expires), "sig": signature(key, path, customer_id, expires)}
    return f"{base_url}{path}?{urlencode(query)}"


def is_valid(key: bytes, path: str, customer_id: str, expires: str | None, sig: str | None, *, now: float) -> bool:
    """Whether `sig` signs (path, customerId, expires) and `expires` is still ahead. Constant-time compare."""
    seconds = whole_number(expires, max_digits=12, canonical=True)  # `007` is not the `7` that was signed
    if seconds is None or sig is None or not _SIGNATURE.fullmatch(sig):
        return False
    expected = signature(key, path, customer_id, seconds).encode("ascii")
    return hmac.compare_digest(expected, sig.encode("ascii")) and seconds > now


class FollowLinks:
    """Signs links with the key in Key Vault, read through the cached SecretStore, and checks links brought back."""

    def __init__(self, settings: Settings, secrets: SecretStore, clock: Clock) -> None:
        self._key_name = settings.status_link_key_secret
        self._lifetime = (settings.max_tracking_hours + GRACE_HOURS) * 3600
        self._secrets = secrets
        self._clock = clock
        self._key_missing_reported = False
        self._lock = threading.Lock()

    def upgrade_location(self, base_url: str, upgrade_id: str, customer_id: str) -> str:
        """The upgrade's follow link; its keyed status URL when the key cannot be read."""
        return self._location(
            base_url, upgrade_path(upgrade_id), customer_id, status_uri(base_url, upgrade_id, customer_id)
        )

    def batch_location(self, base_url: str, batch_id: str) -> str:
        """The batch's follow link (no customerId: it is signed as empty); its keyed URL when the key cannot be read."""
        return self._location(base_url, batch_path(batch_id), "", batch_status_uri(base_url, batch_id))

    def batch_customers_location(self, base_url: str, batch_id: str) -> str:
        """The follow link of the batch's CSV (the progress page's download); the keyed URL without the key."""
        keyed = batch_status_uri(base_url, batch_id) + "/customers"
        return self._location(base_url, batch_customers_path(batch_id), "", keyed)

    def _location(self, base_url: str, path: str, customer_id: str, keyed: str) -> str:
        try:
            key = self._key()
        except UpgradeError as error:
            self._report(error)
            return keyed
        with self._lock:
            self._key_missing_reported = False
        expires = int(self._clock.now() + self._lifetime)
        return signed_url(key, base_url, path, customer_id, expires)

    def check(self, path: str, customer_id: str, expires: str | None, sig: str | None) -> None:
        """Raise InvalidFollowLink unless the link is valid. Reads the key only: nothing about the resource."""
        if not is_valid(self._key(), path, customer_id, expires, sig, now=self._clock.now()):
            raise InvalidFollowLink()

    def _key(self) -> bytes:
        value = self._secrets.get(self._key_name).value
        if not value:
            raise DependencyMisconfigured(f"Key Vault secret '{self._key_name}' is empty")
        return value.encode("utf-8")

    def _report(self, error: UpgradeError) -> None:
        if not isinstance(error, DependencyMisconfigured):
            log.warning("cannot read the follow-link key (%s); this Location is the keyed status URL", error.detail)
            return
        with self._lock:
            first, self._key_missing_reported = not self._key_missing_reported, True
        if first:
            log.error(
                "follow links are off: %s. Run the consent tool (make consent, from the repository root) to create "
                "the secret '%s' (setting STATUS_LINK_KEY_SECRET); until then every Location is the keyed status URL, "
                "which Power Automate cannot poll without the function key",
                error.detail,
                self._key_name,
            )


_built: dict[int, tuple[Services, FollowLinks]] = {}
_built_lock = threading.Lock()


def follow_links(svc: Services) -> FollowLinks:
    """The follow-link signer of this `Services` (one per process), built on first use, single flight. Built here,
    at the HTTP edge that uses it, not by the composition root below it (pyproject.toml, the layers contract)."""
    built = _built.get(id(svc))
    if built is not None and built[0] is svc:
        return built[1]
    with _built_lock:
        built = _built.get(id(svc))
        if built is None or built[0] is not svc:
            if len(_built) > 8:  # services() is rebuilt only when the environment changes (tests, devhost)
                _built.clear()
            built = (svc, FollowLinks(svc.settings, svc.secrets, svc.clock))
            _built[id(svc)] = built
        return built[1]
