"""Failures of the app's Azure dependencies (Key Vault, Storage) as the app's error family.

Logs the error type and HTTP status only: SDK messages can quote request details, never worth the risk.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

from shared.correlation import get_logger
from shared.errors import DependencyMisconfigured, DependencyUnavailable, UpgradeError

log = get_logger(__name__)


def dependency_error(error: AzureError, *, service: str, action: str, roles: str) -> UpgradeError:
    """401/403 need an operator (grant `roles`); anything else is worth a retry later (503 + Retry-After)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    log.warning("%s: %s failed: %s (HTTP %s)", service, action, type(error).__name__, status)
    if isinstance(error, HttpResponseError) and status in (401, 403):
        return DependencyMisconfigured(
            f"{service} refused to {action} (HTTP {status}); grant the app's identity the {roles} role(s)"
        )
    if isinstance(error, ClientAuthenticationError) and status is None:
        return DependencyUnavailable(f"the app's identity could not get a token for {service}", retry_after=10)
    return DependencyUnavailable(f"{service} is unavailable ({action} failed)", retry_after=10)
