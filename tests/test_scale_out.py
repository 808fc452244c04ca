"""Scale out: several instances on one storage account lose and double nothing, even when one is killed.

The first tests pin the Idempotency-Key claim lease (`IDEMPOTENCY_CLAIM_LEASE_SECONDS`) on a virtual clock. The
last one runs three app instances as separate OS processes (`localrun.instance`: DevHost on Microsoft's
worker) on one Azurite and one sandbox, submits upgrades spread over them with 5 % Partner Center faults, kills
one instance with SIGKILL mid-run, and checks what docs/design.md "Scale" promises (bench/scale_out.py drives
it; `make bench` runs the same with 600 upgrades).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from bench.instances import READY_SECONDS
from bench.scale_out import ScaleOutPlan, ScaleOutResult, run_scale_out
from devhost.queue_poller import LeaseKeeper
from localrun.azurite import Azurite
from sandbox.clock import ManualClock
from sandbox.stack import SamSeed, Sandbox
from shared.services import services
from shared.settings import ConfigurationError, Settings
from shared.storage.idempotency import STALE_CLAIM_SECONDS
from shared.storage.idempotency_table import IdempotencyRecord
from shared.upgrades.model import UpgradeRequest
from support.harness import Answer, AppHarness
from support.leaks import find_leaks, known_secrets
from support.openapi_contract import check_response

REQUIRED = {
    "KEY_VAULT_URL": "https://contoso-kv.vault.azure.net/",
    "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "CALLER_API_AUDIENCE": "7d0c7a41-3b9f-4a52-9c1e-6f2d8b4a1c30",
}


def test_the_claim_lease_defaults_to_two_minutes_and_is_validated() -> None:
    assert Settings.from_env(REQUIRED).idempotency_claim_lease_seconds == STALE_CLAIM_SECONDS == 120
    assert Settings.from_env(REQUIRED | {"IDEMPOTENCY_CLAIM_LEASE_SECONDS": "5"}).idempotency_claim_lease_seconds == 5
    for bad in ("0", "3601", "1.5", "soon"):
        with pytest.raises(ConfigurationError, match="IDEMPOTENCY_CLAIM_LEASE_SECONDS must be a whole number") as err:
            Settings.from_env(REQUIRED | {"IDEMPOTENCY_CLAIM_LEASE_SECONDS": bad})
        assert "soon" not in str(err.value)  # names the setting, never its value


@pytest.mark.parametrize("lease", [None, "30"])
def test_a_claim_left_by_a_dead_instance_is_taken_over_after_the_lease(
    app: AppHarness,
    sandbox: Sandbox,
    sam: SamSeed,
    configure: Callable[..., None],
    virtual_clock: ManualClock,
    lease: str | None,
) -> None:
    configure(IDEMPOTENCY_CLAIM_LEASE_SECONDS=lease)
    services().clock = virtual_clock
    seconds = int(lease) if lease else STALE_CLAIM_SECONDS
    customer = str(uuid.uuid4())
    key = f"dead-{uuid.uuid4()}"
    # The dead instance claimed the key (same body, so the same fingerprint) and never completed or released it.
    fingerprint = UpgradeRequest(customer, "Azure", None).fingerprint()
    services().idempotency.table.put_if_absent(IdempotencyRecord.in_progress(key, fingerprint, virtual_clock.now()))

    virtual_clock.advance(seconds - 1)
    held = app.post({"customerId": customer, "productFamily": "Azure"}, headers={"Idempotency-Key": key})
    assert held.status == 409
    assert held.json()["type"].endswith(":idempotency-key-in-flight")

    virtual_clock.advance(2)
    taken = app.post({"customerId": customer, "productFamily": "Azure"}, headers={"Idempotency-Key": key})
    assert taken.status == 202
    assert sandbox.partner_center.creates == 1
    replayed = app.post({"customerId": customer, "productFamily": "Azure"}, headers={"Idempotency-Key": key})
    assert replayed.json()["upgradeId"] == taken.json()["upgradeId"]


def test_a_renewed_lease_keeps_a_long_running_message_from_other_hosts(azurite: Azurite) -> None:
    """devhost's lease (here 4 s instead of Azure's 10 minutes) is renewed every half lease while the function
    runs, so a slow message is not handed to a second host; the delete then uses the renewed pop receipt. Half a
    lease (2 s) is the slack a renewal has on a busy machine."""
    lease_seconds = 4
    queue = QueueClient.from_connection_string(azurite.connection_string, f"lease-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    queue.send_message("slow")
    (message,) = queue.receive_messages(visibility_timeout=lease_seconds, max_messages=1)
    with LeaseKeeper(queue, message, lease_seconds) as lease:
        time.sleep(lease_seconds * 1.5)  # a function running longer than the lease: the time passing is the test
        assert list(queue.receive_messages(visibility_timeout=lease_seconds, max_messages=1)) == []
    assert lease.renewals >= 1
    queue.delete_message(lease.message)
    assert queue.get_queue_properties().approximate_message_count == 0


# Deadlines on conditions, sized from the run's own leases, visibility timeout and back-off (bench/scale_waits.py):
# on a quiet machine the run ends long before them, on a busy one it still ends inside them.
PLAN = ScaleOutPlan(instances=3, upgrades=45, spread_seconds=3.0, callers=12)


@pytest.mark.timeout(READY_SECONDS + PLAN.waits.total)
def test_three_instances_one_killed_lose_and_double_nothing(
    azurite: Azurite, sandbox: Sandbox, sam: SamSeed, tmp_path: Path
) -> None:
    plan = PLAN
    result = run_scale_out(plan, sandbox, azurite.connection_string, sam.callback_signing_key, tmp_path)
    summary = describe(result)

    # The kill happened mid-run: callers met the dead instance, which was answering requests or holding messages.
    answers = sum((s.answers for s in result.submissions), Counter[str]())
    assert answers["connection"] > 0, summary
    assert result.requests_in_flight_at_kill > 0 or result.redelivered_messages > 0, summary
    assert sum(result.faults_injected.values()) > 0, summary
    # Every key got its 202 (retried on another instance after the kill, and after the claim lease when the
    # killed instance held the claim), every 202 reached a final record, and nothing was created twice.
    assert result.unanswered_keys == 0, summary
    assert len(result.accepted) == plan.upgrades, summary
    assert result.lost == 0, summary
    assert set(result.final.values()) == {"Completed"}, summary
    assert result.creates == plan.upgrades and result.duplicate_creates == 0, summary
    # Both copies of a key sent twice name the same upgrade.
    by_key: dict[str, set[str | None]] = {}
    for submission in result.submissions:
        by_key.setdefault(submission.key, set()).add(submission.upgrade_id)
    assert all(len(ids) == 1 for ids in by_key.values()), summary
    # Nothing left behind: no claim held forever, no message in the status or poison queue.
    assert result.stuck_claims == 0, summary
    assert result.status_queue_left == 0 and result.poison == [], summary
    # Callbacks at least once each (receivers de-duplicate by upgradeId + status).
    assert result.callbacks_missing == 0, summary
    # Every answer is one the contract describes; no instance logged or answered a secret.
    violations = [
        f"{r.request.method} {r.url} -> {r.status_code}: {problem}"
        for r in result.responses
        for problem in check_response(r.request.method or "", r.url, r.status_code, r.headers, r.content)
    ]
    assert not violations, "\n".join(violations)
    answered = [
        Answer(r.request.method or "", r.url, r.status_code, dict(r.headers), r.content) for r in result.responses
    ]
    assert not find_leaks(known_secrets(sandbox), result.logs.splitlines(), answered)


def describe(result: ScaleOutResult) -> str:
    return (
        f"accepted {len(result.accepted)}, final {len(result.final)}, lost {result.lost}, creates {result.creates}, "
        f"duplicates {result.duplicate_creates}, stuck claims {result.stuck_claims}, queue left "
        f"{result.status_queue_left}, poison {len(result.poison)}, callbacks missing {result.callbacks_missing}, "
        f"callback duplicates {result.callback_duplicates}, in flight at kill {result.requests_in_flight_at_kill}, "
        f"redelivered {result.redelivered_messages}, failed runs {result.failed_invocations}, "
        f"claims taken over {result.claims_taken_over}, faults "
        f"{dict(result.faults_injected)}, answers {sum((s.answers for s in result.submissions), Counter())}, "
        f"wall {result.wall_seconds:.1f} s"
    )
