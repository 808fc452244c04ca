"""Signed callbacks to the caller's `callbackUrl` when an upgrade is final.

POST the status resource as JSON with `X-Upgrade-Timestamp: <unix seconds>` and
`X-Upgrade-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`, keyed with the UTF-8 bytes of the
`callback-signing-key` Key Vault secret. The URL is checked against CALLBACK_ALLOWED_HOSTS again at send
time, its host is resolved and must be public unless an exact allow-list entry names it, and the request goes
to the address checked (`callback_transport`). Redirects are not followed, and each attempt has short timeouts;
retries go through the queue. See docs/design.md, "Callbacks".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError

from shared.callback_urls import CallbackTarget, callback_target
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import UpgradeError
from shared.key_vault import SecretStore
from shared.settings import Settings
from shared.tracking.callback_policy import Delivery, state_after
from shared.tracking.callback_transport import AddressRefused, Resolver, checked_addresses, pinned_request
from shared.upgrades.model import CallbackState, UpgradeRecord
from shared.upgrades.resource import upgrade_resource

log = get_logger(__name__)

TIMEOUT = (5.0, 10.0)
USER_AGENT = "PartnerCenterUpgradeFunctions-Callback/1.0"


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class CallbackSender:
    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore,
        session: requests.Session,
        clock: Clock,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        """`session` must be a `callback_transport.callback_session()`; `resolve` has the shape of getaddrinfo."""
        self._settings = settings
        self._secrets = secrets
        self._session = session
        self._clock = clock
        self._resolve = resolve

    def deliver(self, url: str, resource: dict[str, Any]) -> Delivery:
        upgrade_id = resource.get("upgradeId")
        target = callback_target(url, self._settings.callback_allowed_hosts)
        if isinstance(target, str):
            log.warning("callback for upgrade %s not sent: callbackUrl %s", upgrade_id, target)
            return Delivery.REFUSED
        try:
            addresses = checked_addresses(target, self._resolve)
        except AddressRefused as refused:
            log.warning("callback for upgrade %s not sent: %s", upgrade_id, refused)
            return Delivery.REFUSED
        except (OSError, UnicodeError) as error:
            log.warning("callback for upgrade %s postponed: host lookup failed (%s)", upgrade_id, type(error).__name__)
            return Delivery.RETRY
        try:
            key = self._secrets.get(self._settings.callback_signing_key_secret).value.encode()
        except UpgradeError as error:
            log.warning("callback for upgrade %s postponed: %s", upgrade_id, error.detail)
            return Delivery.RETRY
        body = json.dumps(resource, separators=(",", ":")).encode()
        timestamp = str(int(self._clock.now()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Upgrade-Timestamp": timestamp,
            "X-Upgrade-Signature": sign(key, timestamp, body),
        }
        return self._post(url, target, addresses, body, headers=headers, upgrade=upgrade_id)

    def _post(
        self,
        url: str,
        target: CallbackTarget,
        addresses: list[str],
        body: bytes,
        *,
        headers: dict[str, str],
        upgrade: Any,
    ) -> Delivery:
        """POST to the checked addresses in turn until one connects (only a failed connect moves on)."""
        started = time.monotonic()
        for address in addresses:
            pinned_url, host = pinned_request(url, target, address)
            try:
                response = self._session.post(
                    pinned_url, data=body, headers={**headers, "Host": host}, timeout=TIMEOUT, allow_redirects=False
                )
            except requests.RequestException as error:
                if _not_connected(error) and address != addresses[-1]:
                    continue
                log.warning("callback for upgrade %s failed: %s", upgrade, type(error).__name__)
                return Delivery.RETRY
            log.info(
                "callback for upgrade %s -> %d in %.0f ms",
                upgrade,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            return Delivery.DELIVERED if 200 <= response.status_code < 300 else Delivery.RETRY
        return Delivery.RETRY

    def deliver_for(self, record: UpgradeRecord) -> None:
        """One delivery attempt for a final record with a pending callback; updates its callback state (the caller
        saves it; the next attempt is already queued, `Tracker.guard_callback`). Failures are never raised."""
        assert record.callback_url  # PENDING implies a URL
        result = self.deliver(record.callback_url, upgrade_resource(record))
        record.callback_attempts += 1
        record.updated_at = self._clock.now()
        record.callback_state = state_after(result, record.callback_attempts)
        if record.callback_state == CallbackState.FAILED:
            log.warning("callback for upgrade %s failed after %d attempts", record.upgrade_id, record.callback_attempts)


def _not_connected(error: requests.RequestException) -> bool:
    """The TCP connection was never made, so nothing was sent and the next address may be tried."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, ConnectTimeoutError)
