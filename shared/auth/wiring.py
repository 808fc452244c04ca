"""The per-process collaborators of callers and audit, built once per `Services` (beside it, not in it: the
services module stays about the upgrade and batch machinery). Each member is built on first use, so an instance
that only sees caller keys never imports the JWT library, and one whose reads all pass never the audit table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.audit.log import AuditLog
    from shared.auth.caller_keys import CallerKeys
    from shared.auth.tokens import TokenValidator
    from shared.services import Services

_ATTRIBUTE = "_caller_services"
_GUARD = threading.Lock()


class CallerServices:
    """Token check (with its signing-key cache), caller keys (with their cache), and the audit trail."""

    def __init__(self, svc: Services) -> None:
        self._app = svc
        self._lock = threading.Lock()
        self._built: dict[str, object] = {}

    def _once[T](self, name: str, build: Callable[[], T]) -> T:
        if name not in self._built:
            with self._lock:
                if name not in self._built:
                    self._built[name] = build()
        return self._built[name]  # type: ignore[return-value]

    @property
    def tokens(self) -> TokenValidator:
        return self._once("tokens", self._tokens)

    @property
    def keys(self) -> CallerKeys:
        return self._once("keys", self._keys)

    @property
    def audit(self) -> AuditLog:
        """The app's table, partition `audit`."""
        return self._once("audit", self._audit)

    def _tokens(self) -> TokenValidator:
        from shared.auth.tokens import SigningKeys, TokenValidator  # noqa: PLC0415
        from shared.services import http_session  # noqa: PLC0415

        settings, clock = self._app.settings, self._app.clock
        keys = SigningKeys(http_session(), settings.authority_host, settings.caller_tenant_id, clock)
        return TokenValidator(keys, settings.authority_host, settings.caller_api_audience, clock)

    def _keys(self) -> CallerKeys:
        from shared.auth.caller_keys import CallerKeys  # noqa: PLC0415

        settings = self._app.settings
        return CallerKeys(self._app.secrets.client, settings.caller_key_secret_prefix, self._app.clock)

    def _audit(self) -> AuditLog:
        from shared.audit.log import AuditLog  # noqa: PLC0415

        return AuditLog(self._app.table, self._app.clock, self._app.settings.audit_retention_days)


def callers(svc: Services) -> CallerServices:
    """`app`'s caller services, built once."""
    found = svc.__dict__.get(_ATTRIBUTE)
    if found is None:
        with _GUARD:
            found = svc.__dict__.setdefault(_ATTRIBUTE, CallerServices(svc))
    return found  # type: ignore[no-any-return]
