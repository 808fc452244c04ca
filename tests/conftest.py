"""Shared fixtures: Azurite and the sandbox for the session, and a cold app per test.

Each test gets its own queue and table names, freshly seeded SAM credentials and a new `services()` (as a
new worker process would), so tests are independent without restarting anything. Every app test is also a
leak test (no secret or token the sandbox knows may appear in a captured log line or a response) and a
contract test (every response it observed must be one openapi/openapi.yaml describes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from localrun.azurite import Azurite
from localrun.environment import FOREIGN_SETTINGS, app_environment
from sandbox.clock import ManualClock
from sandbox.stack import SamSeed, Sandbox
from shared.services import reset_services, services
from shared.settings import SETTINGS, ConfigurationError
from support.harness import AppHarness
from support.leaks import find_leaks, known_secrets
from support.openapi_contract import Observed, assert_all_described

# Property tests: CI replays the same examples every run (derandomized, no example database), so a red CI always
# means a change broke something; a developer's run explores new inputs and keeps failures in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    emulator = Azurite(tmp_path_factory.mktemp("azurite")).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory, clock: ManualClock) -> Iterator[Sandbox]:
    # The tests reach no public host: a CA-only bundle spares every new TLS connection ~20 ms of parsing certifi.
    with Sandbox(tmp_path_factory.mktemp("sandbox"), clock=clock, public_roots=False) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_session: Sandbox, clock: ManualClock) -> Iterator[Sandbox]:
    clock.thaw()
    sandbox_session.reset()
    yield sandbox_session
    clock.thaw()
    for stand_in in sandbox_session.stand_ins:
        if not stand_in.running:
            stand_in.up()
    sandbox_session.reset()


@pytest.fixture
def sam(sandbox: Sandbox) -> SamSeed:
    return sandbox.seed_sam_credentials()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> Callable[..., None]:
    """Set app settings for this test, as if the app restarted with them (new services, same clock)."""

    def apply(**values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_services()
        with contextlib.suppress(ConfigurationError):  # invalid settings: the app's next call answers for them
            services().clock = clock

    return apply


@pytest.fixture
def app_env(
    sandbox: Sandbox, sam: SamSeed, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> Iterator[dict[str, str]]:
    for name in (*FOREIGN_SETTINGS, *(s.name for s in SETTINGS)):
        monkeypatch.delenv(name, raising=False)
    unique = uuid.uuid4().hex[:12]
    env = app_environment(
        sandbox,
        azurite.connection_string,
        status_queue=f"status-{unique}",
        batch_queue=f"batch-{unique}",
        upgrades_table=f"upgrades{unique}",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_services()
    services().clock = clock  # the one clock the app and the sandbox share: waits take no wall time
    yield env
    reset_services()


@pytest.fixture
def app(
    app_env: dict[str, str], azurite: Azurite, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> Iterator[AppHarness]:
    caplog.set_level(logging.DEBUG)
    key = sandbox.seed_caller_key(f"tests-{uuid.uuid4().hex[:8]}")  # every role: tests of roles send their own
    credential = {"X-Caller-Key": key}
    harness = AppHarness(azurite, app_env["UPGRADE_STATUS_QUEUE"], app_env["UPGRADE_BATCH_QUEUE"], credential)
    yield harness
    secrets = known_secrets(sandbox)
    leaks = find_leaks(secrets, [r.getMessage() for r in caplog.records], harness.answers)
    assert not leaks, f"secrets leaked: {leaks}"
    assert_all_described(Observed(a.method, a.path, a.status, a.headers, a.body) for a in harness.answers)


@pytest.fixture
def virtual_clock(app_env: dict[str, str], clock: ManualClock) -> Iterator[ManualClock]:
    """Freeze the one clock the app (its services) and the sandbox share; advance it by hand."""
    clock.freeze()
    services().clock = clock
    yield clock
    clock.thaw()
