"""The app's environment on top of the sandbox: the one place `make run`, the tests and the benchmark get it.

What Azure would present to the app, with the sandbox standing in for the outside world:
``Sandbox.environment()`` (Key Vault, tenant, Partner Center, Entra ID, managed identity, CA bundle) plus
storage (``AzureWebJobsStorage``), the queue and table names, and optionally a shorter status-check schedule.
``FOREIGN_SETTINGS`` must be absent from the process environment: they would make ``DefaultAzureCredential``
pick something other than the managed-identity stand-in, or point the app's storage elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.managed_identity import FOREIGN_CREDENTIALS
from sandbox.stack import Sandbox
from shared.settings import STORAGE_IDENTITY_SUFFIXES

FOREIGN_SETTINGS: tuple[str, ...] = (
    *FOREIGN_CREDENTIALS,
    *(f"AzureWebJobsStorage__{suffix}" for suffix in STORAGE_IDENTITY_SUFFIXES),
)


@dataclass(frozen=True)
class StatusSchedule:
    """``STATUS_FIRST_CHECK_SECONDS`` / ``STATUS_MAX_INTERVAL_SECONDS``: seconds instead of a minute and 15."""

    first_check_seconds: int
    max_interval_seconds: int


# `make run`'s: an upgrade is followed in seconds.
LOCAL_RUN_SCHEDULE = StatusSchedule(5, 10)


def app_environment(
    sandbox: Sandbox,
    storage: str,
    *,
    status_queue: str = "upgrade-status",
    batch_queue: str = "upgrade-batch",
    upgrades_table: str | None = None,
    schedule: StatusSchedule | None = None,
    callback_hosts: str | None = None,
) -> dict[str, str]:
    """App settings for the app running against ``sandbox`` with ``storage`` as ``AzureWebJobsStorage``.

    ``upgrades_table``, ``schedule`` and ``callback_hosts`` are left to the app's defaults when not given.
    """
    env = sandbox.environment() | {
        "AzureWebJobsStorage": storage,
        "UPGRADE_STATUS_QUEUE": status_queue,
        "UPGRADE_BATCH_QUEUE": batch_queue,  # RunBatch's function.json names %UPGRADE_BATCH_QUEUE%
        # The host resolves %CONSENT_CHECK_SCHEDULE% in KeepConsentAlive's function.json: like Azure (where the
        # infra sets it), it must exist as a setting, not only as the app's default.
        "CONSENT_CHECK_SCHEDULE": "0 30 3 * * *",
    }
    if upgrades_table is not None:
        env["UPGRADES_TABLE"] = upgrades_table
    if schedule is not None:
        env["STATUS_FIRST_CHECK_SECONDS"] = str(schedule.first_check_seconds)
        env["STATUS_MAX_INTERVAL_SECONDS"] = str(schedule.max_interval_seconds)
    if callback_hosts is not None:
        env["CALLBACK_ALLOWED_HOSTS"] = callback_hosts
    return env
