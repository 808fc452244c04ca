"""What the local stack reads from the app itself: its settings check and its status records for the console."""

from __future__ import annotations

import json

from devhost.errors import DevHostError

STATUS_FUNCTION = "UpgradeStatus"


def check_app_settings() -> None:
    """Fail start-up, as a deployment would fail its first request, when the app's settings are invalid."""
    from shared.settings import ConfigurationError, Settings  # noqa: PLC0415 - the app's package, loaded by now

    try:
        Settings.from_env()
    except ConfigurationError as exc:
        raise DevHostError(f"{exc} (set them in the environment or in local.settings.json)") from None


def describe_status_check(function: str, body: str | bytes) -> str | None:
    """The outcome of one UpgradeStatus message for its console line, read from the app's status record."""
    if function != STATUS_FUNCTION:
        return None
    message = json.loads(body)
    upgrade_id = message.get("upgradeId") if isinstance(message, dict) else None
    if not isinstance(upgrade_id, str):
        return None
    from shared.services import services  # noqa: PLC0415 - the app's own store, as loaded by the worker
    from shared.upgrades.resource import upgrade_resource  # noqa: PLC0415

    record = services().store.get(upgrade_id)
    if record is None:
        return f"upgrade {upgrade_id}: not recorded"
    resource = upgrade_resource(record)
    parts = [f"Partner Center: {resource.get('partnerCenterStatus') or '-'}", f"checks {resource.get('checks')}"]
    if resource.get("nextCheckAt"):
        parts.append(f"next check {str(resource['nextCheckAt'])[11:19]}Z")
    error = resource.get("error")
    if isinstance(error, dict) and error.get("code"):
        parts.append(f"error {error['code']}")
    callback = resource.get("callback")
    if isinstance(callback, dict) and callback.get("state") not in (None, "none"):
        parts.append(f"callback {callback['state']}")
    return f"upgrade {upgrade_id} {resource.get('status')} ({', '.join(parts)})"
