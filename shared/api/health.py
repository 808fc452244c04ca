"""`GET /api/health` (function `Health`): can this app work right now, and if not, what must the operator fix?

`200 {"status": "healthy", ...}` or `503 {"status": "unhealthy", ...}`; each check has `status` (healthy |
unhealthy) and a short `detail` (docs/design.md, "Consent keep-alive, health and alerts"; docs/health.md):
- `configuration`: the app settings load and validate;
- `keyVault`: the three SAM secrets can be read (through the per-instance secret cache; values never leave it);
- `storage`: the table answers (it reads the recorded consent state);
- `consent`: what `KeepConsentAlive` recorded (shared/consent/health.py decides);
- `poisonMessages`: the approximate message count of each poison queue; any message is unhealthy.
It never calls Partner Center or Entra ID (a health probe must not spend or rotate the SAM token).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.consent.health import assess_consent
from shared.correlation import get_logger
from shared.errors import UpgradeError, where
from shared.services import Services, services
from shared.settings import ConfigurationError

if TYPE_CHECKING:  # imports the Table SDK; the first check builds the store through services()
    from shared.storage.consent_state import ConsentState

log = get_logger(__name__)

HEALTHY, UNHEALTHY = "healthy", "unhealthy"
CHECKS = ("configuration", "keyVault", "storage", "consent", "poisonMessages")

Check = dict[str, Any]


def health(req: func.HttpRequest) -> func.HttpResponse:
    """Through the one answer wrapper: the caller needs Operations.Read (so the settings must load first: with
    invalid settings the answer is the 500 configuration problem, whose detail says the log names them)."""
    from shared.api.answers import answer  # noqa: PLC0415 - it imports the services this module reports on

    return answer(req, "Health", _health)


def _health(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    checks = run_checks()
    failing = [name for name, check in checks.items() if check["status"] != HEALTHY]
    body = {"status": UNHEALTHY if failing else HEALTHY, "checks": checks}
    status = 503 if failing else 200
    log.info("Health checks failing: %s", ", ".join(failing) or "none")
    headers = {"Cache-Control": "no-store"}
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers, mimetype="application/json")


def run_checks() -> dict[str, Check]:
    try:
        svc = services()
    except ConfigurationError as error:
        log.error("%s", error)
        not_checked = _check(False, "not checked: the app settings are invalid")
        configuration = _check(False, "one or more app settings are missing or invalid; the log names them")
        return {"configuration": configuration} | {name: dict(not_checked) for name in CHECKS[1:]}
    state: list[ConsentState | None] = []
    checks = {
        "configuration": _check(True, "the app settings are valid"),
        "keyVault": _guarded("keyVault", lambda: _key_vault(svc)),
        "storage": _guarded("storage", lambda: _storage(svc, state)),
    }
    checks["consent"] = _guarded("consent", lambda: _consent(svc, state))
    checks["poisonMessages"] = _guarded("poisonMessages", lambda: _poison_messages(svc))
    return checks


def _key_vault(svc: Services) -> Check:
    names = (svc.settings.app_id_secret, svc.settings.app_secret_secret, svc.settings.refresh_token_secret)
    try:
        for name in names:
            svc.secrets.get(name)
    except UpgradeError as error:
        return _check(False, error.detail)
    return _check(True, f"the SAM secrets can be read ({', '.join(names)})")


def _storage(svc: Services, state: list[ConsentState | None]) -> Check:
    try:
        state.append(svc.consent_state.read())
    except UpgradeError as error:
        return _check(False, error.detail)
    return _check(True, f"table {svc.settings.upgrades_table} answers")


def _consent(svc: Services, state: list[ConsentState | None]) -> Check:
    if not state:
        return _check(False, "not checked: the consent state is kept in storage, which did not answer")
    stored_at = None if state[0] else _refresh_token_stored_at(svc)
    assessed = assess_consent(state[0], svc.clock.now(), stored_at)
    return _check(assessed.healthy, assessed.detail) | assessed.facts


def _refresh_token_stored_at(svc: Services) -> float | None:
    """When the current refresh token was stored (the cached secret the keyVault check read), None if unknown."""
    try:
        return svc.secrets.get(svc.settings.refresh_token_secret).created_on
    except UpgradeError:
        return None


def _poison_messages(svc: Services) -> Check:
    # lazy: the SDKs load with the first check
    from azure.core.exceptions import AzureError, ResourceNotFoundError  # noqa: PLC0415

    from shared.dependency_errors import dependency_error  # noqa: PLC0415

    counts: dict[str, int] = {}
    for queue in svc.poison_queues:
        try:
            counts[queue.queue_name] = queue.get_queue_properties().approximate_message_count or 0
        except ResourceNotFoundError:
            counts[queue.queue_name] = 0  # the host creates a poison queue with its first message
        except AzureError as error:
            action = f"read queue {queue.queue_name}"
            roles = "Storage Queue Data Contributor"
            failure = dependency_error(error, service="Azure Storage", action=action, roles=roles)
            return _check(False, failure.detail) | {"queues": counts}
    poisoned = {name: count for name, count in counts.items() if count}
    if poisoned:
        listed = ", ".join(f"{name}: {count}" for name, count in poisoned.items())
        detail = f"messages wait in poison queues ({listed}); see README, 'Alerts and runbook'"
        return _check(False, detail) | {"queues": counts}
    return _check(True, "no message in the poison queues") | {"queues": counts}


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """One failing check must not hide the others."""
    try:
        return check()
    except Exception as error:  # a bug in a check: report it, keep checking
        log.error("unexpected %s in the %s health check at %s", type(error).__name__, name, where(error))
        return _check(False, f"the check failed unexpectedly ({type(error).__name__})")


def _check(healthy: bool, detail: str) -> Check:
    return {"status": HEALTHY if healthy else UNHEALTHY, "detail": detail}
