"""The unit tier: pure rules, no Azurite, no Node, no TLS sandbox, no network. `make unit` runs it in seconds.

`make unit` passes `--confcutdir=tests/unit`, so tests/conftest.py (which defines the Azurite and sandbox
fixtures) is not even imported; under `make test` it is, and its fixtures start nothing unless a test asks for
them. The hook below makes sure no unit test does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shared.settings import Settings
from support.step_clock import StepClock

HERE = Path(__file__).resolve().parent
# Fixtures of tests/conftest.py that start or need Azurite, the sandbox or the app.
OUTSIDE_PARTS = frozenset(
    {"azurite", "sandbox_session", "sandbox", "sam", "configure", "app_env", "app", "virtual_clock"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        needs = OUTSIDE_PARTS.intersection(getattr(item, "fixturenames", ()))
        if needs:
            raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {sorted(needs)}: move it out of tests/unit")


@pytest.fixture
def step_clock() -> StepClock:
    return StepClock()


REQUIRED_SETTINGS = {
    "KEY_VAULT_URL": "https://contoso-kv.vault.azure.net/",
    "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
    "CALLER_API_AUDIENCE": "api://partner-center-upgrades",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings as the app reads them from its environment: the required ones plus `overrides`."""

    def make(**overrides: str) -> Settings:
        return Settings.from_env(REQUIRED_SETTINGS | overrides)

    return make
